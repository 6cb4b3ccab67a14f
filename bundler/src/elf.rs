//! Read the ELF, not a tool's opinion of it: refuse binaries that are not static.

use std::path::Path;

use anyhow::{Context as _, Result};
use ferry_format::manifest::Arch;
use object::elf;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _};
use object::Endianness;

/// Why a binary is not shippable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StaticError {
    #[error("{path} is not a 64-bit ELF executable")]
    NotElf { path: String },
    #[error("{path} is built for machine {found}, expected {expected}")]
    WrongMachine {
        path: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{path} is dynamically linked ({why}): it was built with cgo. Build with CGO_ENABLED=0 \
         (ferry does) and remove the dependencies that need cgo, so the binary runs on a host \
         with no matching libc"
    )]
    Dynamic { path: String, why: String },
}

/// Checks for no `PT_INTERP`, no `DT_NEEDED`, and the expected machine.
pub fn check_static(path: &Path, arch: Arch) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    check_static_bytes(&data, &path.display().to_string(), arch).map_err(Into::into)
}

pub fn check_static_bytes(data: &[u8], shown: &str, arch: Arch) -> Result<(), StaticError> {
    let not_elf = || StaticError::NotElf {
        path: shown.to_owned(),
    };
    let file = ElfFile64::<Endianness>::parse(data).map_err(|_| not_elf())?;
    let endian = file.endian();
    let header = file.elf_header();
    let (machine, expected) = (
        header.e_machine(endian),
        match arch {
            Arch::Amd64 => elf::EM_X86_64,
            Arch::Arm64 => elf::EM_AARCH64,
        },
    );
    if machine != expected {
        return Err(StaticError::WrongMachine {
            path: shown.to_owned(),
            found: format!("{machine:#x}"),
            expected: arch.uname(),
        });
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|_| not_elf())?;
    let mut reasons = Vec::new();
    for ph in phdrs {
        if ph.p_type(endian) == elf::PT_INTERP {
            let interp = ph
                .data(endian, data)
                .ok()
                .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            reasons.push(format!("interpreter {interp}"));
        }
        if let Ok(Some(dyns)) = ph.dynamic(endian, data) {
            let needed = dyns
                .iter()
                .filter(|d| d.d_tag(endian) == u64::from(elf::DT_NEEDED))
                .count();
            if needed > 0 {
                reasons.push(format!("{needed} DT_NEEDED libraries"));
            }
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(StaticError::Dynamic {
            path: shown.to_owned(),
            why: reasons.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_binary_is_dynamic() {
        // The build machine's own tools are dynamically linked against glibc.
        let data = std::fs::read("/bin/ls").unwrap();
        let err = check_static_bytes(&data, "/bin/ls", Arch::Amd64).unwrap_err();
        assert!(matches!(err, StaticError::Dynamic { .. }), "{err}");
        assert!(err.to_string().contains("cgo"));
    }

    #[test]
    fn wrong_machine_and_garbage() {
        let data = std::fs::read("/bin/ls").unwrap();
        assert!(matches!(
            check_static_bytes(&data, "x", Arch::Arm64),
            Err(StaticError::WrongMachine { .. })
        ));
        assert!(matches!(
            check_static_bytes(b"#!/bin/sh\n", "x", Arch::Amd64),
            Err(StaticError::NotElf { .. })
        ));
    }
}
