//! Data helpers shared by the benches (a module, not a bench target).

/// The questions of a banking77 `text,category` CSV under ../shared/data/banking77
/// (quoted fields with `""` escapes as the dataset writes them).
pub fn banking77(file: &str) -> std::io::Result<Vec<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/banking77")
        .join(file);
    let text = std::fs::read_to_string(&path)?;
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
