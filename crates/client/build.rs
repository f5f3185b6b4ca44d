//! Compiles the message-content protobuf with `protox` (pure Rust, no `protoc` needed).
fn main() {
    let files = ["proto/content.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"]).expect("protobuf definitions compile");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost generates the content types");
}
