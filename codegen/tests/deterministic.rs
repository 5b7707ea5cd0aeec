//! The generator's output depends on its input only: two runs over the
//! project's schema give the same bytes (no hash-map order, no timestamps).

use std::path::{Path, PathBuf};

fn generate_into(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    let options = ews_toolkit_codegen::Options {
        subset_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wsdl"),
        schema_dir: None,
        out_dir: dir.to_owned(),
    };
    ews_toolkit_codegen::generate(&options).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn two_runs_write_the_same_bytes() {
    let base = std::env::temp_dir().join(format!("ews-codegen-determinism-{}", std::process::id()));
    let first = generate_into(&base.join("a"));
    let second = generate_into(&base.join("b"));
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        first.len() >= 8,
        "expected the EWS and autodiscover outputs, got {}",
        first.len()
    );
    for ((name_a, a), (name_b, b)) in first.iter().zip(&second) {
        assert_eq!(name_a, name_b);
        assert!(a == b, "{name_a} differs between two runs");
    }
}
