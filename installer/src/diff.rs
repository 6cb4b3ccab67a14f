//! A small unified diff of two config files, to report what a kept config differs in.

/// Line diff via LCS; configs are small, and huge inputs get a summary instead.
pub fn unified(name: &str, old: &[u8], new: &[u8]) -> String {
    use std::fmt::Write as _;
    let old: Vec<&str> = std::str::from_utf8(old).unwrap_or("").lines().collect();
    let new: Vec<&str> = std::str::from_utf8(new).unwrap_or("").lines().collect();
    if old.len() * new.len() > 4_000_000 {
        return format!("--- {name}\n+++ {name}.new\n(files differ; too large to diff)\n");
    }
    let (rows, cols) = (old.len(), new.len());
    let mut lcs = vec![vec![0u32; cols + 1]; rows + 1];
    for i in (0..rows).rev() {
        for j in (0..cols).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = format!("--- {name}\n+++ {name}.new\n");
    let (mut i, mut j) = (0, 0);
    while i < rows || j < cols {
        if i < rows && j < cols && old[i] == new[j] {
            i += 1;
            j += 1;
        } else if i < rows && (j == cols || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removed lines first, then added ones, as diff(1) prints a change.
            let _ = writeln!(out, "-{}", old[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{}", new[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn shows_changed_lines_only() {
        let d = super::unified("/etc/x", b"a\nb\nc\n", b"a\nB\nc\nd\n");
        assert_eq!(d, "--- /etc/x\n+++ /etc/x.new\n-b\n+B\n+d\n");
    }
}
