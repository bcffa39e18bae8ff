//! Generation of the cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program assembled
//! by hand from a [`DevicePolicy`], instruction for instruction like runc's devicefilter package.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`:
//! r2 = device type (low 16 bits of access_type), r3 = access (high 16 bits), r4 = major,
//! r5 = minor; then one block per exception returns its verdict, and the last block returns the
//! default verdict.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::{Access, DevicePolicy, DeviceRule, DeviceType};
use crate::error::CgroupError;

/// The license string of the program (the kernel wants one; device programs use no GPL helpers).
pub const LICENSE: &str = "Apache";

/// `BPF_DEVCG_DEV_BLOCK`.
pub const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
pub const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: i32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: i32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: i32 = 4;

// Opcode building blocks (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

/// `r_dst = *(u32 *)(r_src + off)`.
pub const LDX_MEM_W: u8 = BPF_LDX | BPF_MEM | BPF_W;
/// `w_dst &= imm`.
pub const AND32_IMM: u8 = BPF_ALU | BPF_AND | BPF_K;
/// `w_dst >>= imm`.
pub const RSH32_IMM: u8 = BPF_ALU | BPF_RSH | BPF_K;
/// `w_dst = imm`.
pub const MOV32_IMM: u8 = BPF_ALU | BPF_MOV | BPF_K;
/// `w_dst = w_src`.
pub const MOV32_REG: u8 = BPF_ALU | BPF_MOV | BPF_X;
/// `if r_dst != imm goto +off`.
pub const JNE_IMM: u8 = BPF_JMP | BPF_JNE | BPF_K;
/// `if r_dst != r_src goto +off`.
pub const JNE_REG: u8 = BPF_JMP | BPF_JNE | BPF_X;
/// `return r0`.
pub const EXIT: u8 = BPF_JMP | BPF_EXIT;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (0..=10).
    pub dst: u8,
    /// Source register (0..=10).
    pub src: u8,
    /// Jump or memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8-byte wire form the kernel expects (host byte order, register nibbles ordered as the
    /// C bitfields `dst_reg:4, src_reg:4` are laid out).
    pub fn encode(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

impl fmt::Display for Insn {
    /// A listing in the style of cilium/ebpf's (which runc's tests use).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s, o, i) = (self.dst, self.src, self.off, self.imm);
        match self.code {
            LDX_MEM_W => write!(f, "LdXMemW dst: r{d} src: r{s} off: {o} imm: {i}"),
            AND32_IMM => write!(f, "AndImm32 dst: r{d} imm: {i}"),
            RSH32_IMM => write!(f, "RShImm32 dst: r{d} imm: {i}"),
            MOV32_IMM => write!(f, "MovImm32 dst: r{d} imm: {i}"),
            MOV32_REG => write!(f, "MovReg32 dst: r{d} src: r{s}"),
            JNE_IMM => write!(f, "JNEImm dst: r{d} off: {o} imm: {i}"),
            JNE_REG => write!(f, "JNEReg dst: r{d} off: {o} src: r{s}"),
            EXIT => write!(f, "Exit"),
            c => write!(f, "Op({c:#04x}) dst: r{d} src: r{s} off: {o} imm: {i}"),
        }
    }
}

/// A complete device filter program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The instructions.
    pub insns: Vec<Insn>,
}

impl Program {
    /// Builds the filter for `policy`.
    pub fn from_policy(policy: &DevicePolicy) -> Result<Self, CgroupError> {
        let mut insns = vec![
            Insn::new(LDX_MEM_W, 2, 1, 0, 0),
            Insn::new(AND32_IMM, 2, 0, 0, 0xffff),
            Insn::new(LDX_MEM_W, 3, 1, 0, 0),
            Insn::new(RSH32_IMM, 3, 0, 0, 16),
            Insn::new(LDX_MEM_W, 4, 1, 4, 0),
            Insn::new(LDX_MEM_W, 5, 1, 8, 0),
        ];
        let mut rules: Vec<&DeviceRule> = policy.exceptions.iter().collect();
        // Same order as runc (type, then major/minor with wildcards first): all exceptions carry
        // the same verdict, so the order only makes the output canonical.
        rules.sort_by_key(|r| {
            (
                type_order(r.typ),
                r.major.map(i64::from).unwrap_or(-1),
                r.minor.map(i64::from).unwrap_or(-1),
            )
        });
        for rule in rules {
            insns.extend(block(rule)?);
        }
        insns.push(Insn::new(
            MOV32_IMM,
            0,
            0,
            0,
            i32::from(policy.default_allow),
        ));
        insns.push(Insn::new(EXIT, 0, 0, 0, 0));
        Ok(Self { insns })
    }

    /// The program as bytes for BPF_PROG_LOAD.
    pub fn bytes(&self) -> Vec<u8> {
        self.insns.iter().flat_map(Insn::encode).collect()
    }

    /// Loads the program into the kernel (the verifier checks it) and returns its fd.
    pub fn load(&self) -> Result<OwnedFd, CgroupError> {
        crate::sys::bpf::load_device_prog(&self.bytes(), LICENSE).map_err(|(source, log)| {
            CgroupError::Bpf {
                op: "BPF_PROG_LOAD",
                path: PathBuf::from(format!(
                    "<device filter, {} instructions>",
                    self.insns.len()
                )),
                source,
                log,
            }
        })
    }

    /// A one-instruction-per-line listing.
    pub fn listing(&self) -> String {
        self.insns
            .iter()
            .enumerate()
            .map(|(i, insn)| format!("{i}: {insn}\n"))
            .collect()
    }
}

fn type_order(t: DeviceType) -> u8 {
    match t {
        DeviceType::Block => 0,
        DeviceType::Char => 1,
        DeviceType::All => 2,
    }
}

fn imm(v: u32, rule: &DeviceRule) -> Result<i32, CgroupError> {
    i32::try_from(v).map_err(|_| {
        CgroupError::invalid(
            "devices",
            format!("device number {v} too large in rule {}", rule.v1_string()),
        )
    })
}

/// The instructions of one exception: jump to the next block unless the device matches.
fn block(rule: &DeviceRule) -> Result<Vec<Insn>, CgroupError> {
    let typ = match rule.typ {
        DeviceType::Char => DEV_CHAR,
        DeviceType::Block => DEV_BLOCK,
        DeviceType::All => {
            return Err(CgroupError::invalid(
                "devices",
                format!(
                    "internal error: wildcard rule {} in exception list",
                    rule.v1_string()
                ),
            ));
        }
    };
    let mut acc = 0;
    let bits = rule.access.bits();
    for (bit, flag) in [
        (Access::READ, ACC_READ),
        (Access::WRITE, ACC_WRITE),
        (Access::MKNOD, ACC_MKNOD),
    ] {
        if bits & bit != 0 {
            acc |= flag;
        }
    }
    // Jump offsets are patched once the block length is known; u16::MAX marks "next block".
    const NEXT: i16 = i16::MIN;
    let mut b = vec![Insn::new(JNE_IMM, 2, 0, NEXT, typ)];
    if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
        // if (access & acc) != access goto next: r1 is free to use as a temporary.
        b.push(Insn::new(MOV32_REG, 1, 3, 0, 0));
        b.push(Insn::new(AND32_IMM, 1, 0, 0, acc));
        b.push(Insn::new(JNE_REG, 1, 3, NEXT, 0));
    }
    if let Some(major) = rule.major {
        b.push(Insn::new(JNE_IMM, 4, 0, NEXT, imm(major, rule)?));
    }
    if let Some(minor) = rule.minor {
        b.push(Insn::new(JNE_IMM, 5, 0, NEXT, imm(minor, rule)?));
    }
    b.push(Insn::new(MOV32_IMM, 0, 0, 0, i32::from(rule.allow)));
    b.push(Insn::new(EXIT, 0, 0, 0, 0));
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.off == NEXT {
            // Target is the first instruction after this block.
            insn.off = (len - i - 1) as i16;
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::tests::r;
    use crate::devices::{default_allowed_devices, rules_from_oci};
    use DeviceType::*;

    const PROLOGUE: &str = "\
0: LdXMemW dst: r2 src: r1 off: 0 imm: 0
1: AndImm32 dst: r2 imm: 65535
2: LdXMemW dst: r3 src: r1 off: 0 imm: 0
3: RShImm32 dst: r3 imm: 16
4: LdXMemW dst: r4 src: r1 off: 4 imm: 0
5: LdXMemW dst: r5 src: r1 off: 8 imm: 0
";

    fn listing(rules: &[DeviceRule]) -> String {
        Program::from_policy(&DevicePolicy::from_rules(rules))
            .unwrap()
            .listing()
    }

    #[test]
    fn no_rules_rejects_everything() {
        assert_eq!(
            listing(&[]),
            format!("{PROLOGUE}6: MovImm32 dst: r0 imm: 0\n7: Exit\n")
        );
    }

    #[test]
    fn privileged_accepts_everything() {
        let rules = [r(true, All, None, None, "rwm")];
        assert_eq!(
            listing(&rules),
            format!("{PROLOGUE}6: MovImm32 dst: r0 imm: 1\n7: Exit\n")
        );
    }

    #[test]
    fn privileged_except_one_device() {
        let rules = [
            r(true, All, None, None, "rwm"),
            r(false, Block, Some(8), Some(0), "rwm"),
        ];
        let expected = format!(
            "{PROLOGUE}\
6: JNEImm dst: r2 off: 4 imm: 1
7: JNEImm dst: r4 off: 3 imm: 8
8: JNEImm dst: r5 off: 2 imm: 0
9: MovImm32 dst: r0 imm: 0
10: Exit
11: MovImm32 dst: r0 imm: 1
12: Exit
"
        );
        assert_eq!(listing(&rules), expected);
        // runc's "weird" case: a deny before allow-all is dropped, the one after stays.
        let weird = [
            r(false, Block, Some(8), Some(1), "rwm"),
            r(true, All, None, None, "rwm"),
            r(false, Block, Some(8), Some(0), "rwm"),
        ];
        assert_eq!(listing(&weird), expected);
    }

    /// runc's TestDeviceFilter_BuiltInAllowList, with the symbolic jumps resolved.
    #[test]
    fn builtin_allow_list_matches_runc() {
        let rules = rules_from_oci(&default_allowed_devices()).unwrap();
        let mut expected = PROLOGUE.to_string();
        let mut i = 6;
        let mut push = |lines: Vec<String>| {
            for l in lines {
                expected.push_str(&format!("{i}: {l}\n"));
                i += 1;
            }
        };
        for typ in [1, 2] {
            push(vec![
                format!("JNEImm dst: r2 off: 5 imm: {typ}"),
                "MovReg32 dst: r1 src: r3".into(),
                "AndImm32 dst: r1 imm: 1".into(),
                "JNEReg dst: r1 off: 2 src: r3".into(),
                "MovImm32 dst: r0 imm: 1".into(),
                "Exit".into(),
            ]);
        }
        for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
            push(vec![
                "JNEImm dst: r2 off: 4 imm: 2".into(),
                format!("JNEImm dst: r4 off: 3 imm: {maj}"),
                format!("JNEImm dst: r5 off: 2 imm: {min}"),
                "MovImm32 dst: r0 imm: 1".into(),
                "Exit".into(),
            ]);
        }
        push(vec![
            "JNEImm dst: r2 off: 3 imm: 2".into(),
            "JNEImm dst: r4 off: 2 imm: 136".into(),
            "MovImm32 dst: r0 imm: 1".into(),
            "Exit".into(),
            "MovImm32 dst: r0 imm: 0".into(),
            "Exit".into(),
        ]);
        assert_eq!(listing(&rules), expected);
    }

    #[test]
    fn access_subset_block() {
        let rules = [r(true, Char, Some(1), Some(3), "rw")];
        let p = Program::from_policy(&DevicePolicy::from_rules(&rules)).unwrap();
        let block: Vec<String> = p.insns[6..].iter().map(|i| i.to_string()).collect();
        assert_eq!(
            block,
            [
                "JNEImm dst: r2 off: 7 imm: 2",
                "MovReg32 dst: r1 src: r3",
                "AndImm32 dst: r1 imm: 6",
                "JNEReg dst: r1 off: 4 src: r3",
                "JNEImm dst: r4 off: 3 imm: 1",
                "JNEImm dst: r5 off: 2 imm: 3",
                "MovImm32 dst: r0 imm: 1",
                "Exit",
                "MovImm32 dst: r0 imm: 0",
                "Exit",
            ]
        );
    }

    /// Byte encodings checked against `llvm-objdump -d` of the same instructions.
    #[cfg(target_endian = "little")]
    #[test]
    fn wire_encoding() {
        let hex = |i: Insn| {
            i.encode()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            hex(Insn::new(LDX_MEM_W, 2, 1, 0, 0)),
            "61 12 00 00 00 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(LDX_MEM_W, 4, 1, 4, 0)),
            "61 14 04 00 00 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(AND32_IMM, 2, 0, 0, 0xffff)),
            "54 02 00 00 ff ff 00 00"
        );
        assert_eq!(
            hex(Insn::new(RSH32_IMM, 3, 0, 0, 16)),
            "74 03 00 00 10 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(JNE_IMM, 2, 0, 4, 1)),
            "55 02 04 00 01 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(JNE_REG, 1, 3, 2, 0)),
            "5d 31 02 00 00 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(MOV32_REG, 1, 3, 0, 0)),
            "bc 31 00 00 00 00 00 00"
        );
        assert_eq!(
            hex(Insn::new(MOV32_IMM, 0, 0, 0, 1)),
            "b4 00 00 00 01 00 00 00"
        );
        assert_eq!(hex(Insn::new(EXIT, 0, 0, 0, 0)), "95 00 00 00 00 00 00 00");
        let p = Program::from_policy(&DevicePolicy::from_rules(&[])).unwrap();
        assert_eq!(p.bytes().len(), 8 * 8);
    }
}
