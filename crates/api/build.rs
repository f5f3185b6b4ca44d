//! Compiles the API protobufs with `protox` (pure Rust, no `protoc` needed).
fn main() {
    let files = ["proto/api.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"]).expect("protobuf definitions compile");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost generates the API types");
}
