//! The process user: image `User` or CRI runAsUser/runAsUsername/runAsGroup, resolved against
//! the container's own `/etc/passwd` and `/etc/group` (never the host's), plus supplemental
//! groups.

use std::path::Path;

use crate::container::error::RuntimeError;
use crate::oci::spec::User;

/// Reads `<rootfs>/etc/<name>`, refusing symlinks (they would resolve on the host).
fn read_db(rootfs: &Path, name: &str) -> String {
    let p = rootfs.join("etc").join(name);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_file() => std::fs::read_to_string(&p).unwrap_or_default(),
        _ => String::new(),
    }
}

fn passwd_lookup(passwd: &str, key: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || (f[0] != key && f[2] != key) {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

fn group_lookup(group: &str, key: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && (f[0] == key || f[2] == key)).then(|| f[2].parse().ok())?
    })
}

/// Groups listing `user` as a member.
fn member_groups(group: &str, user: &str) -> Vec<u32> {
    group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[3].split(',').any(|m| m == user)).then(|| f[2].parse().ok())?
        })
        .collect()
}

/// Resolves the user. `image_user` is the image config `User` (`user[:group]`).
pub fn resolve(
    rootfs: &Path,
    image_user: &str,
    run_as_user: Option<i64>,
    run_as_username: &str,
    run_as_group: Option<i64>,
    supplemental: &[i64],
) -> Result<User, RuntimeError> {
    let passwd = read_db(rootfs, "passwd");
    let group = read_db(rootfs, "group");
    let (u, g) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let (uid, mut gid, name) = if let Some(uid) = run_as_user {
        let uid = u32::try_from(uid).map_err(|_| {
            RuntimeError::InvalidArgument(format!(
                "linux.security_context.run_as_user: {uid} out of range"
            ))
        })?;
        let gid = passwd_lookup(&passwd, &uid.to_string()).map_or(0, |(_, g)| g);
        (uid, gid, uid.to_string())
    } else if !run_as_username.is_empty() {
        let (uid, gid) = passwd_lookup(&passwd, run_as_username).ok_or_else(|| {
            RuntimeError::InvalidArgument(format!(
                "linux.security_context.run_as_username: no user {run_as_username:?} in the image's /etc/passwd"
            ))
        })?;
        (uid, gid, run_as_username.to_owned())
    } else if u.is_empty() {
        (0, 0, "root".to_owned())
    } else if let Ok(uid) = u.parse::<u32>() {
        let gid = passwd_lookup(&passwd, u).map_or(0, |(_, g)| g);
        (uid, gid, u.to_owned())
    } else {
        let (uid, gid) = passwd_lookup(&passwd, u).ok_or_else(|| {
            RuntimeError::FailedPrecondition(format!(
                "image user {u:?} is not in the image's /etc/passwd"
            ))
        })?;
        (uid, gid, u.to_owned())
    };
    if run_as_user.is_none()
        && run_as_username.is_empty()
        && let Some(g) = g
    {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_lookup(&group, g).ok_or_else(|| {
                RuntimeError::FailedPrecondition(format!(
                    "image group {g:?} is not in the image's /etc/group"
                ))
            })?,
        };
    }
    if let Some(g) = run_as_group {
        gid = u32::try_from(g).map_err(|_| {
            RuntimeError::InvalidArgument(format!(
                "linux.security_context.run_as_group: {g} out of range"
            ))
        })?;
    }
    let mut additional_gids = member_groups(&group, &name);
    for s in supplemental {
        additional_gids.push(u32::try_from(*s).map_err(|_| {
            RuntimeError::InvalidArgument(format!(
                "linux.security_context.supplemental_groups: {s} out of range"
            ))
        })?);
    }
    additional_gids.retain(|g| *g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_from_image_databases() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "web:x:1001:\nvideo:x:44:web\nstaff:x:50:\n",
        )
        .unwrap();
        let r = |iu: &str, u: Option<i64>, n: &str, g: Option<i64>, s: &[i64]| {
            resolve(d.path(), iu, u, n, g, s)
        };
        assert_eq!(
            r("", None, "", None, &[]).unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        let u = r("web", None, "", None, &[7]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 1001, vec![7, 44]));
        let u = r("web:staff", None, "", None, &[]).unwrap();
        assert_eq!(u.gid, 50);
        let u = r("web", Some(1000), "", Some(5), &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 5));
        assert_eq!(r("", None, "web", None, &[]).unwrap().uid, 1000);
        assert!(
            r("", None, "ghost", None, &[])
                .unwrap_err()
                .to_string()
                .contains("ghost")
        );
        assert!(r("ghost", None, "", None, &[]).is_err());
        assert_eq!(r("4242", None, "", None, &[]).unwrap().uid, 4242);
    }
}
