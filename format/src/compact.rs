//! Sorting, duplicate finding and field-less enums' deserializer with one copy of the
//! machinery for every type.
//!
//! `slice::sort*` compiles a driftsort or ipnsort of 4–6 KiB for each element type it is
//! used with, and `BTreeSet`/`BTreeMap` about as much per key type (their `collect` sorts
//! too); the static installer has a 2 MiB budget (issue 14). Here the merge sort works on
//! indices and is compiled once; each caller adds only its comparison and a permutation.
//! Same results as the standard library: stable, O(n log n).

/// Sorts `v` stably by `less` (`a` strictly before `b`), as `v.sort_by(..)` would.
pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let mut order = sorted_indices(v.len(), &mut |a, b| less(&v[a], &v[b]));
    permute(v, &mut order);
}

/// Sorts `v` stably in ascending order, as `v.sort()` would.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

/// Sorts `v` stably by a key, as `v.sort_by_key(..)` would.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a) < key(b));
}

/// Sorted and without repeats: what collecting into a `BTreeSet` gives, as a `Vec`.
pub fn sorted_set<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    sort(&mut v);
    v.dedup();
    v
}

/// The index of the first item equal to an earlier one (in `items` order): the item a
/// loop inserting each into a set would find already there first.
pub fn first_repeat<T: Ord>(items: &[T]) -> Option<usize> {
    let order = sorted_indices(items.len(), &mut |a, b| items[a] < items[b]);
    // Equal items are adjacent, in `items` order: each run's second is its first repeat.
    order
        .windows(2)
        .filter(|w| items[w[0]] == items[w[1]])
        .map(|w| w[1])
        .min()
}

/// For a field-less enum's `Deserialize`: the index of the variant `d` names in `names`,
/// with serde's message for an unknown name (and the deserializer's position, as the error
/// comes from inside it). A derived deserializer, which also takes `{"name": null}`, costs
/// about 700 bytes per enum.
pub fn variant_index<'de, D: serde::Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
) -> Result<usize, D::Error> {
    d.deserialize_str(VariantName(names))
}

struct VariantName(&'static [&'static str]);

impl serde::de::Visitor<'_> for VariantName {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| E::unknown_variant(name, self.0))
    }
}

/// `0..n` ordered stably by `less` over indices: a bottom-up merge sort, the one copy.
fn sorted_indices(n: usize, less: &mut dyn FnMut(usize, usize) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut merged = vec![0; n];
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut a, mut b) = (start, mid);
            for slot in &mut merged[start..end] {
                // From the left run unless the right one's head is strictly smaller: stable.
                if a < mid && (b == end || !less(order[b], order[a])) {
                    *slot = order[a];
                    a += 1;
                } else {
                    *slot = order[b];
                    b += 1;
                }
            }
        }
        std::mem::swap(&mut order, &mut merged);
        width *= 2;
    }
    order
}

/// Rearranges `v` so that its `k`th item is the one that was at `order[k]`, by swaps
/// along the permutation's cycles. `order` is consumed (left as the identity).
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_the_standard_library_and_stably() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for n in (0..70).chain([255, 256, 257, 1000]) {
            let v: Vec<(u8, usize)> = (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (u8::try_from(seed % 7).unwrap(), i)
                })
                .collect();
            let mut want = v.clone();
            want.sort_by_key(|p| p.0);
            let mut got = v.clone();
            sort_by_key(&mut got, |p| p.0);
            assert_eq!(got, want, "n = {n}");
            let mut got = v.clone();
            sort(&mut got);
            let mut want = v.clone();
            want.sort_unstable();
            assert_eq!(got, want, "n = {n}");
        }
        let mut words = vec!["b", "a", "c", "a"];
        sort(&mut words);
        assert_eq!(words, ["a", "a", "b", "c"]);
        assert_eq!(sorted_set(vec![3, 1, 3, 2, 1]), [1, 2, 3]);
    }

    #[test]
    fn field_less_enums_read_back_what_they_write() {
        use crate::footprint::Account;
        use crate::install::{Keep, OnUpgrade, SecretKind};
        use crate::manifest::{Arch, Os, Role};
        fn round<T>(all: &[T])
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            for v in all {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v, "{json}");
            }
        }
        round(&[Account::New, Account::Existing]);
        round(&[Keep::Data, Keep::Config, Keep::Release]);
        round(&[OnUpgrade::Preserve, OnUpgrade::Replace]);
        round(&[SecretKind::Credential, SecretKind::EnvironmentFile]);
        round(&[Arch::Amd64, Arch::Arm64]);
        round(&[Os::Linux]);
        round(&[
            Role::Binary,
            Role::Config,
            Role::Unit,
            Role::Logrotate,
            Role::Sysusers,
            Role::Tmpfiles,
            Role::Sbom,
            Role::Doc,
        ]);
        let e = serde_json::from_str::<Arch>("\"sparc\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown variant `sparc`, expected `amd64` or `arm64` at line 1 column 7"
        );
        assert!(serde_json::from_str::<Keep>("\"Data\"").is_err());
        assert!(serde_json::from_str::<Keep>("1").is_err());
    }

    #[test]
    fn finds_the_repeat_a_set_would_find_first() {
        assert_eq!(first_repeat::<u8>(&[]), None);
        assert_eq!(first_repeat(&[1, 2, 3]), None);
        assert_eq!(first_repeat(&[1, 2, 1]), Some(2));
        assert_eq!(first_repeat(&[5, 1, 2, 2, 1, 5]), Some(3));
        assert_eq!(first_repeat(&[1, 1, 1]), Some(1));
        assert_eq!(first_repeat(&["x", "y", "z", "y", "x"]), Some(3));
    }
}
