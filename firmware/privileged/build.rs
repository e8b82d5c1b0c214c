//! The build time, the helper's floor for a clock it is asked to set: a
//! binary cannot have been built after "now". SOURCE_DATE_EPOCH (a
//! reproducible build) wins; otherwise the time of the first build of this
//! crate, which is only ever earlier than the real build, so still a floor.
fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=POCHTA_BUILD_EPOCH={epoch}");
}
