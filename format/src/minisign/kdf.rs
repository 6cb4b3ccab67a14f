//! libsodium's `crypto_pwhash_scryptsalsa208sha256`, as minisign uses it to encrypt
//! secret keys: the file stores opslimit and memlimit, and libsodium's `pickparams`
//! turns those into scrypt's N, r and p.

use zeroize::Zeroizing;

use super::SigError;

/// What C minisign writes (libsodium's `*_SENSITIVE` limits): N = 2^20, r = 8, p = 1.
pub(crate) const OPSLIMIT_SENSITIVE: u64 = 33_554_432;
pub(crate) const MEMLIMIT_SENSITIVE: u64 = 1_073_741_824;

/// Encrypted part of a secret key: keynum (8 bytes) ‖ sk (64) ‖ checksum (32).
pub(crate) const STREAM_LEN: usize = 104;

/// Most memory a secret key file may make us spend: what minisign itself uses. A key
/// file asking for more is refused rather than letting it exhaust the host.
const MAX_MEMORY: u64 = 1 << 30;
/// Most work (N·p block mixes): four times what minisign's own keys cost.
const MAX_MIXES: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScryptParams {
    pub(crate) log_n: u32,
    pub(crate) r: u32,
    pub(crate) p: u32,
}

/// libsodium's `pickparams`, step for step, so keys written with any limits decrypt.
pub(crate) fn pick_params(opslimit: u64, memlimit: u64) -> ScryptParams {
    // Smallest log2(N) >= 1 with N > max_n / 2, capped at 62, as libsodium's loop finds it.
    fn log_n_for(max_n: u64) -> u32 {
        let mut log_n = 1;
        while log_n < 63 && (1u64 << log_n) <= max_n / 2 {
            log_n += 1;
        }
        log_n
    }

    let opslimit = opslimit.max(32_768);
    let r: u32 = 8;
    if opslimit < memlimit / 32 {
        let log_n = log_n_for(opslimit / (u64::from(r) * 4));
        ScryptParams { log_n, r, p: 1 }
    } else {
        let log_n = log_n_for(memlimit / (u64::from(r) * 128));
        let max_rp = ((opslimit / 4) / (1u64 << log_n)).min(0x3fff_ffff);
        let max_rp = u32::try_from(max_rp).expect("capped below 2^30");
        ScryptParams {
            log_n,
            r,
            p: max_rp / r,
        }
    }
}

/// The key stream that is `XORed` over keynum ‖ sk ‖ checksum.
pub(crate) fn derive_stream(
    passphrase: &[u8],
    salt: &[u8; 32],
    opslimit: u64,
    memlimit: u64,
) -> Result<Zeroizing<[u8; STREAM_LEN]>, SigError> {
    let params = pick_params(opslimit, memlimit);
    let too_costly = SigError::KdfTooCostly { opslimit, memlimit };
    // log_n <= 62 and r = 8, so these cannot overflow a u128.
    let n = 1u128 << params.log_n;
    let memory = n * 128 * u128::from(params.r);
    let mixes = n * u128::from(params.p);
    if memory > u128::from(MAX_MEMORY) || mixes > u128::from(MAX_MIXES) {
        return Err(too_costly);
    }
    if params.p == 0 {
        // libsodium refuses these parameters too, so no tool can have written such a key.
        return Err(SigError::malformed(
            "secret key",
            format!("scrypt limits (opslimit {opslimit}, memlimit {memlimit}) give p = 0"),
        ));
    }
    let log_n = u8::try_from(params.log_n).expect("bounded by the memory check");
    let scrypt_params =
        scrypt::Params::new(log_n, params.r, params.p, scrypt::Params::RECOMMENDED_LEN).map_err(
            |e| {
                SigError::malformed(
                    "secret key",
                    format!("scrypt parameters {params:?} rejected: {e}"),
                )
            },
        )?;
    let mut stream = Zeroizing::new([0u8; STREAM_LEN]);
    scrypt::scrypt(passphrase, salt, &scrypt_params, stream.as_mut_slice())
        .expect("104 bytes is a valid scrypt output length");
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickparams_matches_libsodium() {
        // (opslimit, memlimit) -> (log2 N, r, p), worked through libsodium's pickparams.
        let cases = [
            // What C minisign writes.
            (OPSLIMIT_SENSITIVE, MEMLIMIT_SENSITIVE, (20, 8, 1)),
            // libsodium's INTERACTIVE limits (rsign2 and older tools).
            (524_288, 16_777_216, (14, 8, 1)),
            // The spec's second example.
            (1_048_576, 33_554_432, (15, 8, 1)),
            // opslimit is the tighter bound: p = 1, N from opslimit.
            (1_048_576, 1 << 30, (15, 8, 1)),
            // opslimit below 32768 is raised to it.
            (0, 1 << 30, (10, 8, 1)),
            // More ops than memory needs: p grows.
            (1 << 28, 1 << 25, (15, 8, 256)),
            (1 << 30, MEMLIMIT_SENSITIVE, (20, 8, 32)),
            // Tiny memlimit: N bottoms out at 2.
            (32_768, 0, (1, 8, 512)),
        ];
        for (ops, mem, (log_n, r, p)) in cases {
            assert_eq!(
                pick_params(ops, mem),
                ScryptParams { log_n, r, p },
                "opslimit {ops}, memlimit {mem}"
            );
        }
    }

    #[test]
    fn refuses_costly_limits() {
        for (ops, mem) in [(u64::MAX, u64::MAX), (1 << 40, 1 << 31), (1 << 30, 1 << 28)] {
            assert!(
                matches!(
                    derive_stream(b"pw", &[0; 32], ops, mem),
                    Err(SigError::KdfTooCostly { .. })
                ),
                "opslimit {ops}, memlimit {mem}"
            );
        }
    }

    #[test]
    fn cheap_limits_derive_deterministically() {
        let a = derive_stream(b"pw", &[7; 32], 32_768, 1 << 20).unwrap();
        let b = derive_stream(b"pw", &[7; 32], 32_768, 1 << 20).unwrap();
        let c = derive_stream(b"pX", &[7; 32], 32_768, 1 << 20).unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
    }
}
