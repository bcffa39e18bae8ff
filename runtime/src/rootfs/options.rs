//! Parsing OCI mount options (`"ro"`, `"nosuid"`, `"rbind"`, `"rslave"`, `"rro"`, `"size=64m"`…)
//! into mount(2) flags, propagation changes, mount_setattr(2) attributes and filesystem data.
//! Pure logic, so every option is unit-tested; the tables follow runc's `parseMountOptions`.

use nix::mount::MsFlags;

/// mount_setattr(2) attribute bits (`MOUNT_ATTR_*`).
pub mod attr {
    /// MOUNT_ATTR_RDONLY
    pub const RDONLY: u64 = 0x1;
    /// MOUNT_ATTR_NOSUID
    pub const NOSUID: u64 = 0x2;
    /// MOUNT_ATTR_NODEV
    pub const NODEV: u64 = 0x4;
    /// MOUNT_ATTR_NOEXEC
    pub const NOEXEC: u64 = 0x8;
    /// MOUNT_ATTR__ATIME (mask of the atime modes)
    pub const ATIME_MASK: u64 = 0x70;
    /// MOUNT_ATTR_RELATIME
    pub const RELATIME: u64 = 0x0;
    /// MOUNT_ATTR_NOATIME
    pub const NOATIME: u64 = 0x10;
    /// MOUNT_ATTR_STRICTATIME
    pub const STRICTATIME: u64 = 0x20;
    /// MOUNT_ATTR_NODIRATIME
    pub const NODIRATIME: u64 = 0x80;
    /// MOUNT_ATTR_NOSYMFOLLOW
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// MS_NOSYMFOLLOW (not in nix's MsFlags).
pub const MS_NOSYMFOLLOW: u64 = 256;

/// The parsed form of a mount's option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (MS_RDONLY, MS_NOSUID, MS_BIND, MS_REC, …).
    pub flags: MsFlags,
    /// Propagation changes applied after the mount, in order (MS_PRIVATE|MS_REC, …).
    pub propagation: Vec<MsFlags>,
    /// Recursive mount_setattr attributes to set (from "rro", "rnosuid", …).
    pub rec_attr_set: u64,
    /// Recursive mount_setattr attributes to clear (from "rrw", "rsuid", …).
    pub rec_attr_clr: u64,
    /// Filesystem-specific data, comma-joined (e.g. "mode=755,size=65536k").
    pub data: String,
    /// "tmpcopyup": copy the directory's previous contents into the new tmpfs.
    pub tmpcopyup: bool,
    /// "nosymfollow" was requested (MS_NOSYMFOLLOW).
    pub nosymfollow: bool,
    /// "idmap" or "ridmap": an idmapped bind mount.
    pub idmap: bool,
    /// "ridmap": idmap submounts too.
    pub idmap_recursive: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr_set: 0,
            rec_attr_clr: 0,
            data: String::new(),
            tmpcopyup: false,
            nosymfollow: false,
            idmap: false,
            idmap_recursive: false,
        }
    }
}

impl MountOptions {
    /// True for "bind" / "rbind" mounts.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The flags that need a MS_REMOUNT after a bind mount (bind ignores them on the first call).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    /// mount(2) flags with the raw MS_NOSYMFOLLOW bit added when requested.
    pub fn mount_flags(&self) -> MsFlags {
        let mut f = self.flags;
        if self.nosymfollow {
            f |= MsFlags::from_bits_retain(MS_NOSYMFOLLOW as libc::c_ulong);
        }
        f
    }
}

/// The options an unknown word is checked against: (name, clear?, flag).
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

/// Propagation options.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Recursive (mount_setattr) options: (name, clear?, attribute).
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, attr::RDONLY),
    ("rrw", true, attr::RDONLY),
    ("rnosuid", false, attr::NOSUID),
    ("rsuid", true, attr::NOSUID),
    ("rnodev", false, attr::NODEV),
    ("rdev", true, attr::NODEV),
    ("rnoexec", false, attr::NOEXEC),
    ("rexec", true, attr::NOEXEC),
    ("rnodiratime", false, attr::NODIRATIME),
    ("rdiratime", true, attr::NODIRATIME),
    ("rnosymfollow", false, attr::NOSYMFOLLOW),
    ("rsymfollow", true, attr::NOSYMFOLLOW),
];

/// Recursive atime modes: (name, resulting atime field). The "no" forms fall back to the
/// kernel default, relatime.
const REC_ATIME: &[(&str, u64)] = &[
    ("rrelatime", attr::RELATIME),
    ("rnorelatime", attr::RELATIME),
    ("rnoatime", attr::NOATIME),
    ("ratime", attr::RELATIME),
    ("rstrictatime", attr::STRICTATIME),
    ("rnostrictatime", attr::RELATIME),
];

/// Options we refuse explicitly rather than passing them to the filesystem as data.
const UNSUPPORTED: &[&str] = &[];

/// Error from [`parse`]: the option that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOption(pub String);

/// Parses an OCI option list. Unknown words become filesystem data, like runc.
pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, UnsupportedOption> {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        if let Some((_, clear, flag)) = FLAGS.iter().find(|(n, _, _)| *n == opt) {
            if *clear {
                out.flags.remove(*flag);
            } else {
                out.flags.insert(*flag);
            }
            // relatime/strictatime/noatime are mutually exclusive atime modes.
            if !*clear && opt.ends_with("atime") && !opt.contains("dir") {
                for other in [
                    MsFlags::MS_RELATIME,
                    MsFlags::MS_STRICTATIME,
                    MsFlags::MS_NOATIME,
                ] {
                    if other != *flag {
                        out.flags.remove(other);
                    }
                }
            }
        } else if let Some((_, p)) = PROPAGATION.iter().find(|(n, _)| *n == opt) {
            out.propagation.push(*p);
        } else if let Some((_, clear, a)) = REC_ATTRS.iter().find(|(n, _, _)| *n == opt) {
            if *clear {
                out.rec_attr_clr |= *a;
                out.rec_attr_set &= !*a;
            } else {
                out.rec_attr_set |= *a;
                out.rec_attr_clr &= !*a;
            }
        } else if let Some((_, mode)) = REC_ATIME.iter().find(|(n, _)| *n == opt) {
            // The atime mode is a field, not a bit: changing it means clearing the whole field.
            out.rec_attr_clr |= attr::ATIME_MASK;
            out.rec_attr_set = (out.rec_attr_set & !attr::ATIME_MASK) | *mode;
        } else if opt == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if opt == "nosymfollow" {
            out.nosymfollow = true;
        } else if opt == "symfollow" {
            out.nosymfollow = false;
        } else if opt == "idmap" || opt == "ridmap" {
            out.idmap = true;
            out.idmap_recursive = opt == "ridmap";
        } else if UNSUPPORTED.contains(&opt) {
            return Err(UnsupportedOption(opt.to_string()));
        } else if !opt.is_empty() {
            data.push(opt);
        }
    }
    out.data = data.join(",");
    Ok(out)
}

/// Parses `linux.rootfsPropagation` ("shared", "rslave", …).
pub fn parse_propagation(value: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data() {
        let o = parse(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]).unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_override_earlier() {
        let o = parse(&["ro", "rw", "nosuid", "suid", "exec"]).unwrap();
        assert_eq!(o.flags, MsFlags::empty());
        let o = parse(&["noatime", "relatime"]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_RELATIME);
    }

    #[test]
    fn rbind_ro_needs_remount() {
        let o = parse(&["rbind", "ro", "nosuid"]).unwrap();
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(o.data, "");
    }

    #[test]
    fn propagation_in_order() {
        let o = parse(&["bind", "rprivate", "shared", "rslave", "runbindable"]).unwrap();
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                MsFlags::MS_SHARED,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ]
        );
        assert_eq!(
            parse_propagation("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(parse_propagation("bogus"), None);
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid", "rnoatime"]).unwrap();
        assert_eq!(o.rec_attr_set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        assert_eq!(o.rec_attr_clr, attr::ATIME_MASK);
        let o = parse(&["rro", "rrw"]).unwrap();
        assert_eq!(o.rec_attr_set, 0);
        assert_eq!(o.rec_attr_clr, attr::RDONLY);
    }

    #[test]
    fn special_options() {
        let o = parse(&["tmpcopyup", "nosymfollow"]).unwrap();
        assert!(o.tmpcopyup && o.nosymfollow);
        assert_eq!(o.data, "");
        assert!(o.mount_flags().bits() & MS_NOSYMFOLLOW as libc::c_ulong != 0);
        let o = parse(&["rbind", "ridmap"]).unwrap();
        assert!(o.idmap && o.idmap_recursive && o.data.is_empty());
    }
}
