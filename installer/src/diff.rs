//! A small unified diff of two config files, to report what a kept config differs in.

/// Line diff via LCS; configs are small, and huge inputs get a summary instead.
pub fn unified(name: &str, old: &[u8], new: &[u8]) -> String {
    let a: Vec<&str> = std::str::from_utf8(old).unwrap_or("").lines().collect();
    let b: Vec<&str> = std::str::from_utf8(new).unwrap_or("").lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!("--- {name}\n+++ {name}.new\n(files differ; too large to diff)\n");
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = format!("--- {name}\n+++ {name}.new\n");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
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
