//! File modes, written as octal strings (`"0640"`) so manifests read like `ls -l`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Permission bits only (`0o7777` at most).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid mode {text:?}: expected 4 octal digits such as \"0640\"")]
pub struct ParseModeError {
    pub text: String,
}

impl Mode {
    pub const fn new(bits: u32) -> Option<Self> {
        if bits & !0o7777 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    /// setuid, setgid or sticky.
    pub const fn has_special_bits(self) -> bool {
        self.0 & 0o7000 != 0
    }

    pub const fn is_world_writable(self) -> bool {
        self.0 & 0o002 != 0
    }

    pub fn parse(text: &str) -> Result<Self, ParseModeError> {
        let err = || ParseModeError {
            text: text.chars().take(20).collect(),
        };
        if text.len() != 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(err());
        }
        u32::from_str_radix(text, 8).map(Self).map_err(|_| err())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mode({:04o})", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Mode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (text, bits) in [
            ("0640", Some(0o640)),
            ("0755", Some(0o755)),
            ("4755", Some(0o4755)),
        ] {
            assert_eq!(Mode::parse(text).ok().map(Mode::bits), bits, "{text}");
        }
        for bad in ["640", "00640", "0648", "rwx", "", "-640", "+640"] {
            assert!(Mode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Mode::parse("0640").unwrap().to_string(), "0640");
        assert!(Mode::parse("2750").unwrap().has_special_bits());
        assert!(!Mode::parse("0750").unwrap().has_special_bits());
    }
}
