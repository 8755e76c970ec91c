//! Loader throughput: clips per second that the data path serves at a training batch, from
//! packed shards and from WAV, FLAC and MP3 folders, on one core and on all of them. The step
//! bench (`train_step`) gives what the GPU consumes on the same machine.
//!
//!     cargo bench --bench loader
//!     SN_BENCH_CLIPS=128 SN_BENCH_SECONDS=20 SN_BENCH_BATCH=32 cargo bench --bench loader
//!     SN_BENCH_KEEP=/tmp/loader-data cargo bench --bench loader   # keep the folders and the pack
//!
//! The clips are synthetic (tones in noise, 16-bit at 22,050 Hz, each with 4 teacher rows of 1000
//! and 401 classes) written to a temporary folder; FLAC and MP3 (128 kbit/s) copies are made with
//! `sox` when it is installed (Debian: `apt-get install sox libsox-fmt-all`), and skipped with a
//! note when it is not. The folders are opened with no decoded-clip cache, as a dataset far larger
//! than memory is: every clip is decoded each time it is served. The pack is read through its
//! memory map after a first pass, so its pages are in the page cache, as a pack that fits in RAM
//! is; a larger one adds the disk's read time (about 880 kB per 20 s clip).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rand::{Rng, SeedableRng};
use sn_wgpu::data::pack::PackedDataset;
use sn_wgpu::data::{load_batch_into, Crop, Dataset, DatasetOptions, ManifestDataset, Order};
use sn_wgpu::model::Heads;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `[rows, classes]` random distributions as a teacher array.
fn write_npy(path: &Path, rows: usize, classes: usize, rng: &mut impl Rng) {
    let mut data = Vec::with_capacity(rows * classes);
    for _ in 0..rows {
        let raw: Vec<f32> = (0..classes).map(|_| rng.random_range(0.01..1.0)).collect();
        let total: f32 = raw.iter().sum();
        data.extend(raw.iter().map(|v| v / total));
    }
    sn_wgpu::eval::extract::write_npy(path, &[rows, classes], &data).unwrap();
}

/// `clips` WAVs of `seconds` with teachers in `dir/wav`, and the manifest naming them.
fn write_wav_folder(dir: &Path, clips: usize, seconds: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let samples = (seconds * 22_050.0) as usize;
    let mut manifest = String::from("audio,objects,scenes\n");
    for i in 0..clips {
        let freq = 110.0 * (1 + i % 12) as f64;
        let mut w = hound::WavWriter::create(dir.join(format!("c{i}.wav")), spec).unwrap();
        for n in 0..samples {
            let tone = 6000.0 * (std::f64::consts::TAU * freq * n as f64 / 22_050.0).sin();
            w.write_sample((tone + rng.random_range(-2000.0..2000.0)) as i16).unwrap();
        }
        w.finalize().unwrap();
        write_npy(&dir.join(format!("c{i}.o.npy")), 4, 1000, &mut rng);
        write_npy(&dir.join(format!("c{i}.s.npy")), 4, 401, &mut rng);
        manifest += &format!("c{i}.wav,c{i}.o.npy,c{i}.s.npy\n");
    }
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
}

/// The WAV folder re-encoded by sox as `ext` (extra sox arguments before the output), teachers
/// shared; None when sox is missing or fails.
fn sox_folder(wav: &Path, dir: &Path, ext: &str, args: &[&str], clips: usize) -> Option<()> {
    std::fs::create_dir_all(dir).unwrap();
    let mut manifest = String::from("audio,objects,scenes\n");
    for i in 0..clips {
        let out = dir.join(format!("c{i}.{ext}"));
        let ok = Command::new("sox").arg(wav.join(format!("c{i}.wav"))).args(args).arg(&out).status().ok()?.success();
        if !ok {
            return None;
        }
        let teacher = |t: &str| wav.join(format!("c{i}.{t}.npy")).display().to_string();
        manifest += &format!("c{i}.{ext},{},{}\n", teacher("o"), teacher("s"));
    }
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
    Some(())
}

fn main() {
    let clips: usize = env_or("SN_BENCH_CLIPS", "64").parse().expect("SN_BENCH_CLIPS: a count");
    let seconds: f64 = env_or("SN_BENCH_SECONDS", "20").parse().expect("SN_BENCH_SECONDS: a number");
    let batch: usize = env_or("SN_BENCH_BATCH", "32").parse().expect("SN_BENCH_BATCH: a count");
    let all_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let keep = std::env::var_os("SN_BENCH_KEEP").map(std::path::PathBuf::from);
    let root = keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sn-wgpu-loader-bench-{}", std::process::id())));
    assert!(!root.join("wav").exists(), "{} already holds the bench's folders: choose an empty folder", root.display());
    let wav = root.join("wav");
    write_wav_folder(&wav, clips, seconds);
    let crop = Crop::new((seconds * 22_050.0) as usize, 4).unwrap();
    let mut datasets: Vec<(String, Arc<dyn Dataset>)> = Vec::new();
    let folder = |dir: &Path| -> Arc<dyn Dataset> {
        let options = DatasetOptions { cache_bytes: 0, ..DatasetOptions::new(crop) };
        Arc::new(ManifestDataset::open(&[dir.to_path_buf()], &options).unwrap().0)
    };
    let pack_dir = root.join("pack");
    let options = sn_wgpu::pack::PackOptions {
        data: vec![wav.clone()],
        out: pack_dir.clone(),
        shard_bytes: 1_000_000_000,
        skip_bad: false,
        overwrite: false,
    };
    sn_wgpu::pack::pack(&options).unwrap();
    let both = Heads { objects: true, scenes: true, classes: false };
    datasets.push(("packed".into(), Arc::new(PackedDataset::open(&[pack_dir], crop, both, false).unwrap().0)));
    datasets.push(("wav".into(), folder(&wav)));
    for (ext, args) in [("flac", &[][..]), ("mp3", &["-C", "128"][..])] {
        let dir = root.join(ext);
        match sox_folder(&wav, &dir, ext, args, clips) {
            Some(()) => datasets.push((ext.into(), folder(&dir))),
            None => println!("{ext}: skipped, sox could not write it (apt-get install sox libsox-fmt-all)"),
        }
    }

    let mut criterion = Criterion::default()
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group(format!("loader {seconds} s x {batch}"));
    group.throughput(Throughput::Elements(batch as u64));
    let mut results = Vec::new();
    for (name, dataset) in &datasets {
        let order = Order::for_dataset(&**dataset, batch, 0, true);
        for cores in [1, all_cores] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(cores).build().unwrap();
            let (mut total, mut count) = (Duration::ZERO, 0u64);
            let mut b = 0;
            // As the loader does in training: each batch reuses the buffers of the one before.
            let mut last = None;
            group.bench_function(format!("{name}, {cores} core(s)"), |bencher| {
                bencher.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let indices = order.batch(b);
                        b += 1;
                        last = Some(pool.install(|| load_batch_into(&**dataset, &indices, last.take(), None).unwrap()));
                    }
                    let t = start.elapsed();
                    (total, count) = (total + t, count + iters);
                    t
                })
            });
            results.push((name.clone(), cores, total.as_secs_f64() / count.max(1) as f64));
        }
    }
    group.finish();
    match keep {
        Some(_) => println!("the folders and the pack are kept in {}", root.display()),
        None => drop(std::fs::remove_dir_all(&root)),
    }
    println!("\n{clips} clips of {seconds} s, batch {batch}; {all_cores} core(s) on this machine");
    println!(
        "{:<8} {:>6} {:>12} {:>10} {:>14} {:>22}",
        "format", "cores", "ms/batch", "clips/s", "clips/s/core", "cores per 1000 clips/s"
    );
    for (name, cores, secs) in results {
        let rate = batch as f64 / secs;
        let per_core = rate / cores as f64;
        println!("{name:<8} {cores:>6} {:>12.1} {rate:>10.1} {per_core:>14.1} {:>22.2}", secs * 1e3, 1000.0 / per_core);
    }
}
