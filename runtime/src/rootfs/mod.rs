//! Root filesystem: mounts in order with propagation, /dev, pivot_root or chroot, masked and readonly paths, sysctls.
