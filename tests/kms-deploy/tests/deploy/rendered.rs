//! The authorization blocks the chart and the kustomize base ship are the ones rendered
//! from `deploy/nats/permissions.json`, so the cluster the tests run is the one deployed.

use kms_deploy::repo_root;

#[test]
fn shipped_blocks_are_rendered_from_the_matrix() {
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/nats-auth.py"))
        .arg("--check")
        .status()
        .expect("running scripts/nats-auth.py (python3 is needed)");
    assert!(status.success(), "run scripts/nats-auth.py: the rendered NATS config is stale");
    let read = |p: &str| std::fs::read_to_string(repo_root().join(p)).unwrap();
    let deployed = read("deploy/nats/auth-password.conf");
    // The kustomize base is rendered from the chart: its NATS ConfigMap holds the block.
    let base = read("k8s/base/kms.yaml");
    for line in deployed.lines().filter(|l| !l.trim().is_empty()) {
        assert!(base.contains(&format!("    {line}")), "k8s/base/kms.yaml lacks {line:?}");
    }
    assert_eq!(read("helm/kms/files/auth-password.conf"), deployed);
    assert_eq!(read("helm/kms/files/auth-nkey.conf"), read("deploy/nats/auth-nkey.conf"));
}
