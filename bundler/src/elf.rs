//! Read the ELF, not a tool's opinion of it: refuse binaries that are not static, and
//! check that every `-X` variable exists in the program and holds its value.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use ferry_format::manifest::Arch;
use object::elf;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{
    Endian as _, Endianness, Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind,
};

use crate::gobuild::Stamp;

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

/// Why one `-X` did not take.
#[derive(Debug, PartialEq, Eq)]
enum Unstamped {
    Missing,
    NotString { kind: String, size: u64 },
    Holds(String),
}

/// Checks, in a binary linked with its symbol table ([`crate::gobuild::Link::Symbols`]),
/// that every `-X` target is a package-level string variable holding its value. Go's
/// linker silently ignores `-X` for a variable that does not exist or that dead-code
/// elimination dropped (the program never reads it): the bundle would ship without its
/// version.
pub fn check_stamps(path: &Path, stamps: &[Stamp]) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    check_stamps_bytes(&data, stamps)
        .with_context(|| format!("checking the -X variables in {}", path.display()))
}

fn check_stamps_bytes(data: &[u8], stamps: &[Stamp]) -> Result<()> {
    let file = ElfFile64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    if file.symbol_table().is_none() {
        bail!("the binary has no symbol table (was it linked with -s?)");
    }
    let mut problems = Vec::new();
    for st in stamps {
        let why = match unstamped(&file, &st.symbol.link_name(), st.value.as_str()) {
            None => continue,
            Some(Unstamped::Missing) => "is not in the built program: it does not exist, is not a \
                 package-level string variable, or the program never reads it"
                .to_owned(),
            Some(Unstamped::NotString { kind, size }) => format!(
                "is not a package-level string variable in the built program (a {size}-byte \
                 {kind} symbol, not a 16-byte string header)"
            ),
            Some(Unstamped::Holds(v)) => {
                format!("does not hold its -X value in the built program (it holds {v:?})")
            }
        };
        problems.push(format!("{} = {:?} {why}", st.key, st.symbol.as_str()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "{}; go's linker ignores -X for such a variable, so the binary would ship without \
             the value: fix the name (IMPORTPATH.NAME, e.g. main.version) or read the variable",
            problems.join("; ")
        )
    }
}

fn unstamped(file: &ElfFile64<'_, Endianness>, name: &str, value: &str) -> Option<Unstamped> {
    let Some(sym) = file.symbols().find(|s| s.name() == Ok(name)) else {
        return Some(Unstamped::Missing);
    };
    if sym.kind() != SymbolKind::Data || sym.size() != 16 {
        return Some(Unstamped::NotString {
            kind: format!("{:?}", sym.kind()).to_lowercase(),
            size: sym.size(),
        });
    }
    // The string header: data pointer and length, in the target's byte order.
    let read = |addr: u64, len: u64| -> Option<&[u8]> {
        file.sections()
            .find_map(|s| s.data_range(addr, len).ok().flatten())
    };
    let word = |b: &[u8]| {
        let b: [u8; 8] = b.try_into().expect("8 bytes");
        if file.endian().is_little_endian() {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        }
    };
    // A header with no bytes in the file is in .bss: zero, the empty string.
    let (ptr, len) = read(sym.address(), 16).map_or((0, 0), |h| (word(&h[..8]), word(&h[8..])));
    let held = if len == 0 {
        Some(&[][..])
    } else {
        read(ptr, len)
    };
    match held {
        Some(h) if h == value.as_bytes() => None,
        Some(h) => Some(Unstamped::Holds(String::from_utf8_lossy(h).into_owned())),
        None => Some(Unstamped::Holds(format!(
            "{len} bytes at {ptr:#x}, outside the file"
        ))),
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

    /// A Go program with the kinds of variable `-X` meets, linked as ferry links it.
    fn go_program(strip: bool, assignments: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("go.mod", "module example.com/m\n\ngo 1.22\n");
        w(
            "ver.sion/v.go",
            "package version\n\nvar V = \"x\"\n\nvar Unset string\n",
        );
        w(
            "main.go",
            r#"package main

import (
	"os"
	"strconv"

	version "example.com/m/ver.sion"
)

var version2 = "dev"
var unread = "never read"
const konst = "k"
var n int
var blank string

func main() { os.Stdout.WriteString(version.V + version.Unset + version2 + konst + blank + strconv.Itoa(n)) }
"#,
        );
        let mut flags = String::from(if strip { "-s -w" } else { "-w" });
        for a in assignments {
            flags.push_str(" -X ");
            flags.push_str(a);
        }
        let out = std::process::Command::new("go")
            .current_dir(dir.path())
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .env("GOOS", "linux")
            .env("GOARCH", "amd64")
            .args(["build", "-trimpath", "-o", "prog"])
            .arg(format!("-ldflags={flags}"))
            .output()
            .expect("go is required by this test (install golang)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(dir.path().join("prog")).unwrap()
    }

    fn stamp(symbol: &str, value: &str) -> Stamp {
        Stamp {
            key: format!("build.ldflags_x.{symbol:?}"),
            symbol: crate::project::types::GoSymbol::new(symbol).unwrap(),
            value: crate::project::types::LdflagsValue::new(value).unwrap(),
        }
    }

    #[test]
    fn every_x_variable_must_exist_as_a_string_holding_its_value() {
        let assignments = [
            "main.version2=1.2.3",
            "example.com/m/ver.sion.V=v",
            "example.com/m/ver.sion.Unset=set",
            "main.unread=u",
            "main.konst=c",
            "main.verison=1.2.3",
            "main.empty=",
            "main.blank=",
        ];
        let data = go_program(false, &assignments);
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("main.version2", "1.2.3", None),
            ("example.com/m/ver.sion.V", "v", None),
            ("example.com/m/ver.sion.Unset", "set", None),
            ("main.blank", "", None),
            ("main.blank", "x", Some("(it holds \"\")")),
            // Misspelt, never read (dead code), a constant: go's linker ignored each.
            ("main.verison", "1.2.3", Some("is not in the built program: it does not exist, is not a package-level string variable, or the program never reads it")),
            ("main.unread", "u", Some("is not in the built program")),
            ("main.konst", "c", Some("is not in the built program")),
            ("main.empty", "", Some("is not in the built program")),
            ("main.n", "3", Some("is not a package-level string variable in the built program (a 8-byte data symbol")),
            ("main.main", "x", Some("-byte text symbol, not a 16-byte string header)")),
            ("main.version2", "other", Some("does not hold its -X value in the built program (it holds \"1.2.3\")")),
        ];
        for (symbol, value, want) in cases {
            let got = check_stamps_bytes(&data, &[stamp(symbol, value)]);
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    let e = e.to_string();
                    assert!(e.contains(w), "{symbol}: {e}");
                    assert!(
                        e.starts_with(&format!("build.ldflags_x.\"{symbol}\" = \"{symbol}\" ")),
                        "{e}"
                    );
                    assert!(!e.contains('\n'), "{e}");
                }
                (g, w) => panic!("{symbol}={value}: got {g:?}, wanted {w:?}"),
            }
        }
        // Several at once: each is named, in one line.
        let e = check_stamps_bytes(
            &data,
            &[
                stamp("main.verison", "1"),
                stamp("main.version2", "1.2.3"),
                stamp("main.unread", "u"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("main.verison")
                && e.contains("main.unread")
                && !e.contains("\"main.version2\""),
            "{e}"
        );

        let stripped = go_program(true, &assignments[..1]);
        let e = check_stamps_bytes(&stripped, &[stamp("main.version2", "1.2.3")]).unwrap_err();
        assert!(e.to_string().contains("no symbol table"), "{e}");
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
