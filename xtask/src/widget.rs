//! Placeholder, replaced by its owner: builds the widget into npm/dist.

pub fn build(_release: bool) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub fn bench_size() -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
