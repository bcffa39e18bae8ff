//! Idmapped bind mounts (OCI `uidMappings`/`gidMappings` on a mount, options "idmap" and
//! "ridmap"): the source is cloned with open_tree(2), given the mappings of a throwaway user
//! namespace with mount_setattr(MOUNT_ATTR_IDMAP), and attached with move_mount(2). Files owned
//! by `containerID` on disk then appear owned by `hostID` through the mount.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount};

use super::RootfsError;
use super::options::MountOptions;
use crate::sys::setup;

/// The mappings to apply to one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    /// uid_map contents ("containerID hostID size" lines).
    pub uid_map: String,
    /// gid_map contents.
    pub gid_map: String,
    /// "ridmap": idmap every submount too.
    pub recursive: bool,
}

/// uid_map/gid_map text for a list of mappings.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// What idmapping (if any) a spec mount asks for. The mount's own mappings win; "idmap" /
/// "ridmap" without them use the container's user namespace mappings (`ns_maps`), like runc.
pub fn requested(
    m: &Mount,
    opts: &MountOptions,
    ns_maps: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
) -> Result<Option<IdMap>, String> {
    let own = match (m.uid_mappings(), m.gid_mappings()) {
        (Some(u), Some(g)) => Some((u.as_slice(), g.as_slice())),
        (None, None) => None,
        _ => return Err("uidMappings and gidMappings must be given together".into()),
    };
    if own.is_none() && !opts.idmap {
        return Ok(None);
    }
    if !opts.is_bind() {
        return Err("idmapped mounts are only supported for bind mounts".into());
    }
    let Some((u, g)) = own.or(ns_maps) else {
        return Err(
            "\"idmap\" needs uidMappings/gidMappings or a user namespace with mappings".into(),
        );
    };
    if u.is_empty() || g.is_empty() {
        return Err("empty uidMappings/gidMappings".into());
    }
    Ok(Some(IdMap {
        uid_map: map_text(u),
        gid_map: map_text(g),
        recursive: opts.idmap_recursive,
    }))
}

fn sys<'a>(op: &'static str, path: &'a Path) -> impl Fn(nix::errno::Errno) -> RootfsError + 'a {
    move |e| RootfsError::Sys {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

/// Attaches an idmapped copy of `source` (recursively when `rbind`) on the directory or file
/// `target_fd`.
pub fn bind(
    source: &Path,
    target_fd: &OwnedFd,
    rbind: bool,
    map: &IdMap,
    dest: &Path,
) -> Result<(), RootfsError> {
    let src = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| sys("open_tree", source)(nix::errno::Errno::EINVAL))?;
    let tree = setup::open_tree_clone(&src, rbind).map_err(sys("open_tree", source))?;
    let userns = setup::userns_with_mappings(&map.uid_map, &map.gid_map)
        .map_err(sys("create user namespace for idmapped mount", dest))?;
    setup::mount_setattr_idmap(tree.as_fd(), map.recursive, userns.as_fd())
        .map_err(sys("mount_setattr(MOUNT_ATTR_IDMAP)", dest))?;
    setup::move_mount_onto(tree.as_fd(), target_fd.as_fd()).map_err(sys("move_mount", dest))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::options;

    fn mount(v: serde_json::Value) -> Mount {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn mappings_and_options() {
        let maps = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let m = mount(
            serde_json::json!({"destination": "/v", "type": "bind", "source": "/s",
            "options": ["rbind", "ridmap"], "uidMappings": maps, "gidMappings": maps}),
        );
        let mut o = options::parse(&["rbind", "ridmap"]).unwrap();
        o.flags |= nix::mount::MsFlags::MS_BIND;
        let r = requested(&m, &o, None).unwrap().unwrap();
        assert_eq!(r.uid_map, "0 100000 65536\n");
        assert!(r.recursive);

        let plain = mount(serde_json::json!({"destination": "/v", "type": "bind", "source": "/s"}));
        assert_eq!(
            requested(&plain, &options::parse(&["bind"]).unwrap(), None),
            Ok(None)
        );
        let idmap_only = options::parse(&["bind", "idmap"]).unwrap();
        assert!(
            requested(&plain, &idmap_only, None)
                .unwrap_err()
                .contains("user namespace")
        );

        let half = mount(
            serde_json::json!({"destination": "/v", "type": "bind", "source": "/s",
            "uidMappings": maps}),
        );
        assert!(requested(&half, &o, None).unwrap_err().contains("together"));
        let tmpfs = options::parse(&["size=1m", "idmap"]).unwrap();
        let t = mount(serde_json::json!({"destination": "/v", "type": "tmpfs", "source": "tmpfs"}));
        assert!(requested(&t, &tmpfs, None).unwrap_err().contains("bind"));
    }
}
