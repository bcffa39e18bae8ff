//! Cluster networking on the host: bridge, veths, address allocation, NAT and port mappings.
