//! Data helpers shared by the benches (a module, not a bench target).

/// The banking77 folder the benches read: env `DEJA_BANKING77_DIR`, by default
/// `../shared/data/banking77` next to the repository (the full set; tests/data holds only
/// a subset for the tests).
pub fn banking77_dir() -> std::path::PathBuf {
    std::env::var_os("DEJA_BANKING77_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/banking77")
        })
}

/// The questions of a banking77 `text,category` CSV in [`banking77_dir`]
/// (quoted fields with `""` escapes as the dataset writes them).
pub fn banking77(file: &str) -> std::io::Result<Vec<String>> {
    let path = banking77_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let q = match l.strip_prefix('"') {
                Some(rest) => rest.rsplit_once("\",")?.0.replace("\"\"", "\""),
                None => l.rsplit_once(',')?.0.to_owned(),
            };
            Some(q)
        })
        .collect())
}
