//! cri-server configuration: the TOML file (/etc/cri-server/config.toml) and its defaults.
