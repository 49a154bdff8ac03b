//! The committed CRD YAML in the Helm chart must be exactly what the types generate.

use std::path::Path;

#[test]
fn committed_chart_crds_match_the_rust_types() {
    let dir = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
        .join("../charts/chaperone/crds");
    let crds = chaperone_crds::all_crds();
    assert_eq!(crds.len(), 4);
    for crd in crds {
        let name = crd.metadata.name.clone().expect("generated CRDs have names");
        let path = dir.join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{} is missing ({e}); run `cargo xtask crdgen`", path.display())
        });
        let generated = chaperone_crds::crd_yaml(&crd).expect("CRDs serialize");
        assert!(
            committed == generated,
            "{} drifted from the types in crds/src; run `cargo xtask crdgen` and commit the result",
            path.display()
        );
    }
}
