//! Unified diffs of config files (`diff -u` format, three lines of context), to report
//! what a kept or replaced config differs in; `patch` applies them.

use std::fmt::Write as _;

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;
/// Past this many line pairs the LCS table is not built; a summary is printed instead.
const MAX_CELLS: usize = 4_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// Diff of `old` (the host's file, `name`) against `new` (`name.new`); empty if equal.
pub fn unified(name: &str, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    // Lines keep their newline, so a missing final newline is a difference too.
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let mut out = format!("--- {name}\n+++ {name}.new\n");
    if old_lines.len().saturating_mul(new_lines.len()) > MAX_CELLS {
        out.push_str("(files differ; too large to diff)\n");
        return out;
    }
    let script = edit_script(&old_lines, &new_lines);
    if script.iter().all(|&(op, _)| op == Op::Same) {
        return String::new();
    }
    // Where each step of the script is in the old and the new file (0-based lines).
    let mut pos = Vec::with_capacity(script.len());
    let (mut i, mut j) = (0usize, 0usize);
    for &(op, _) in &script {
        pos.push((i, j));
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    let changes: Vec<usize> = (0..script.len())
        .filter(|&k| script[k].0 != Op::Same)
        .collect();
    // Hunks as [start, end) ranges of the script: each change with its context, merged
    // where contexts touch (changes at most two contexts apart), as `diff -u` does.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &c in &changes {
        let start = c.saturating_sub(CONTEXT);
        let end = (c + 1 + CONTEXT).min(script.len());
        match hunks.last_mut() {
            Some(h) if start <= h.1 => h.1 = h.1.max(end),
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let steps = &script[start..end];
        let old_len = steps.iter().filter(|s| s.0 != Op::Added).count();
        let new_len = steps.iter().filter(|s| s.0 != Op::Removed).count();
        let (i, j) = pos[start];
        let _ = writeln!(out, "@@ -{} +{} @@", range(i, old_len), range(j, new_len));
        for &(op, line) in steps {
            out.push(match op {
                Op::Same => ' ',
                Op::Removed => '-',
                Op::Added => '+',
            });
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// `diff -u`'s range: 1-based start and a length, the length left out when it is 1; an
/// empty range names the line before it.
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

/// The steps from `a` to `b` through their longest common subsequence, removals before
/// additions within a change, as diff(1) prints them.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (rows, cols) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; cols + 1]; rows + 1];
    for i in (0..rows).rev() {
        for j in (0..cols).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut script = Vec::with_capacity(rows.max(cols));
    let (mut i, mut j) = (0, 0);
    while i < rows || j < cols {
        if i < rows && j < cols && a[i] == b[j] {
            script.push((Op::Same, a[i]));
            i += 1;
            j += 1;
        } else if i < rows && (j == cols || lcs[i + 1][j] >= lcs[i][j + 1]) {
            script.push((Op::Removed, a[i]));
            i += 1;
        } else {
            script.push((Op::Added, b[j]));
            j += 1;
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::unified;

    #[test]
    fn hunks_carry_ranges_and_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n";
        let new = "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n";
        assert_eq!(
            unified("/etc/x", old.as_bytes(), new.as_bytes()),
            "--- /etc/x\n+++ /etc/x.new\n\
             @@ -3,7 +3,7 @@\n 3\n 4\n 5\n-6\n+six\n 7\n 8\n 9\n\
             @@ -13,3 +13,4 @@\n 13\n 14\n 15\n+16\n"
        );
    }

    #[test]
    fn close_changes_share_a_hunk_and_ranges_follow_diff_u() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "a\nb\nc\n",
                "a\nB\nc\nd\n",
                "@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n",
            ),
            ("", "a\n", "@@ -0,0 +1 @@\n+a\n"),
            ("a\n", "", "@@ -1 +0,0 @@\n-a\n"),
            (
                "a\nb",
                "a\nb\n",
                "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
            ),
        ];
        for (old, new, hunks) in cases {
            assert_eq!(
                unified("f", old.as_bytes(), new.as_bytes()),
                format!("--- f\n+++ f.new\n{hunks}"),
                "{old:?} -> {new:?}"
            );
        }
        assert_eq!(unified("f", b"same\n", b"same\n"), "");
    }

    /// patch(1) is the judge: applying the diff to the old file gives the new one.
    #[test]
    fn patch_applies_the_diff() {
        let dir = tempfile::tempdir().unwrap();
        let long = (1..=40).fold(String::new(), |mut s, n| {
            let _ = writeln!(s, "key{n} = {n}");
            s
        });
        let edited = long
            .replace("key2 = 2\n", "")
            .replace("key20 = 20", "key20 = 200")
            .replace("key39 = 39\n", "key39 = 39\nextra = 1\n")
            + "tail";
        let cases = [
            ("a\nb\nc\n", "a\nB\nc\nd\n"),
            ("", "x\ny\n"),
            ("x\ny\n", ""),
            ("a\nb", "a\nb\n"),
            ("a\nb\n", "a\nc"),
            (long.as_str(), edited.as_str()),
        ];
        for (n, (old, new)) in cases.iter().enumerate() {
            let file = dir.path().join(format!("f{n}"));
            std::fs::write(&file, old).unwrap();
            let diff = unified("f", old.as_bytes(), new.as_bytes());
            let mut child = std::process::Command::new("patch")
                .arg("--quiet")
                .arg("--force")
                .arg(&file)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("patch(1)");
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), diff.as_bytes()).unwrap();
            assert!(child.wait().unwrap().success(), "patch refused:\n{diff}");
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                *new,
                "case {n}:\n{diff}"
            );
        }
    }
}
