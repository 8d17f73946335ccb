//! Compiles `proto/kms/v1/*.proto` with protox (pure Rust), so no machine needs `protoc`;
//! with the `grpc` feature also the audit service's gRPC API (`kms/audit/v1`) with
//! tonic's server and client stubs.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["common", "metadata", "crypto", "policy", "audit"]
        .map(|name| root.join(format!("kms/v1/{name}.proto")));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;

    let grpc = root.join("kms/audit/v1/audit_service.proto");
    println!("cargo:rerun-if-changed={}", grpc.display());
    if std::env::var_os("CARGO_FEATURE_GRPC").is_some() {
        let descriptors = protox::compile([&grpc], [&root])?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(descriptors)?;
    }
    Ok(())
}
