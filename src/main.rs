//! The `sn-wgpu` command line: parse, call one library function, print.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sn_wgpu::eval::{self, ExtractOptions, Pool, PredictOptions, Shard, TeachOptions, DEFAULT_CHUNK_SAMPLES};
use sn_wgpu::filters::{self, FiltersOptions};
use sn_wgpu::ops::conv1d::ConvKernel;
use sn_wgpu::probe::{self, CSetting, ClassifierKind, Extensions, ProbeOptions, Tail, WindowSpec};
use sn_wgpu::profile::{self, ProfileOptions, SortBy};
use sn_wgpu::selftest;
use sn_wgpu::train;
use sn_wgpu::units::{self, UnitsOptions};

#[derive(Parser)]
#[command(name = "sn-wgpu", version, about = "SoundNet training and inference on any GPU through wgpu")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--conv-kernel`: the command line's names for [`ConvKernel`] (documented there).
#[derive(Clone, Copy, clap::ValueEnum)]
enum ConvKernelArg {
    /// One invocation per output: the readable version, to compare the others with.
    Plain,
    /// Workgroup tiles in workgroup memory: shaped for GPUs.
    Tiled,
    /// Register rows and subgroup shuffles: shaped for CPU drivers (needs subgroups).
    Cpu,
    /// For each pass the kernel measured fastest on this adapter (`sn-wgpu tune`); before it is
    /// measured, cpu on CPU adapters, elsewhere tiled where the tiles fill the GPU, else plain.
    Auto,
}

impl From<ConvKernelArg> for ConvKernel {
    fn from(arg: ConvKernelArg) -> ConvKernel {
        match arg {
            ConvKernelArg::Plain => ConvKernel::Plain,
            ConvKernelArg::Tiled => ConvKernel::Tiled,
            ConvKernelArg::Cpu => ConvKernel::Cpu,
            ConvKernelArg::Auto => ConvKernel::Auto,
        }
    }
}

// Every subcommand takes negative numbers as values, so `--lr -0.1` reaches the flag's own
// check (which names the flag and its range) instead of being taken for an option `-0`.
#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter, the one sn-wgpu picks, its limits and timestamp support.
    Info,
    /// Train SoundNet as a student of a vision teacher (with no --data: on a built-in synthetic demo),
    /// or on the classes of a labeled folder (--labels), from scratch or fine-tuning a pretrained one.
    #[command(allow_negative_numbers = true)]
    Train(train::TrainFlags),
    /// Top-k objects and scenes of each clip, per output step (about 3 s apart) and for the whole clip.
    #[command(allow_negative_numbers = true)]
    Predict(PredictArgs),
    /// One layer's features of each clip as float32 .npy files [C, T] (or [C] with --pool).
    #[command(allow_negative_numbers = true)]
    Extract(ExtractArgs),
    /// A trained SoundNet as the teacher of unlabeled audio: writes a dataset folder for
    /// `train --data` (manifest.csv and per-5 s class probabilities of each head).
    #[command(allow_negative_numbers = true)]
    Teach(TeachArgs),
    /// The authors' released SoundNet training set (lists, the teachers' prob files, the MP3s) as
    /// dataset folders for `train --data`, one per list.
    ImportSoundnet(ImportArgs),
    /// Decode dataset folders once into packed shards (int16 clips, teacher rows and an index,
    /// memory-mapped), which train --data reads without decoding at every step.
    Pack(PackArgs),
    /// Per-kernel GPU time of a training step (or --inference pass) against the device's limits.
    #[command(allow_negative_numbers = true)]
    Profile(ProfileArgs),
    /// The paper's transfer experiment: a linear classifier on one layer's features of an ESC-style
    /// dataset (meta.csv + audio/), leave-one-fold-out; accuracy, confusion matrix, t-SNE map.
    #[command(allow_negative_numbers = true)]
    Probe(ProbeArgs),
    /// What each hidden unit of a layer detects: for every unit (or the --units N most selective),
    /// the top-k clips of a folder that activate it most, cut to its receptive field as WAVs, on
    /// one HTML page with players, classes (from meta.csv) and purity.
    #[command(allow_negative_numbers = true)]
    Units(UnitsArgs),
    /// The first layer's filters as a PNG, each as its waveform and its magnitude frequency response
    /// (the paper's Figure 5), with each one's peak frequency.
    #[command(allow_negative_numbers = true)]
    Filters(FiltersArgs),
    /// Check every kernel family on this adapter against its f64 CPU reference, and two training
    /// steps against PyTorch; exits with status 1 when any check fails.
    #[command(allow_negative_numbers = true)]
    Selftest(SelftestArgs),
    /// Measure which conv kernel is fastest for each pass of a model at a batch and length on this
    /// adapter, and keep the choices (kernel-choices.json in the user's cache folder, or
    /// SN_WGPU_TUNE_CACHE) for every later command; train and profile measure what is missing.
    Tune(TuneArgs),
}

#[derive(Args)]
struct TuneArgs {
    /// soundnet8, soundnet5 or soundnet8-narrowN.
    #[arg(long, default_value = "soundnet8")]
    model: String,
    /// Clips per pass: the batch size train runs with, divided by --accumulate if it accumulates.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Seconds of audio per clip.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Only the forward passes, as predict, extract and teach run them.
    #[arg(long)]
    inference: bool,
}

#[derive(Args)]
struct UnitsArgs {
    /// A folder of clips (wav, mp3, flac, ogg), or one laid out as ESC-50 ships (meta.csv and
    /// audio/); a meta.csv with filename and category (or target) columns labels the clips.
    dir: PathBuf,
    /// An sn-wgpu checkpoint (from `sn-wgpu train`, or tools/import_soundnet8.py).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// conv1..conv7, pool1, pool2, pool5, objects or scenes.
    #[arg(long, default_value = "conv7")]
    layer: String,
    /// Excerpts per unit (each from a different clip).
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Show only the N most selective units [default: every unit that varies].
    #[arg(long)]
    units: Option<usize>,
    /// A unit is a pure detector when at least this share of its top k is one class.
    #[arg(long, default_value_t = 0.8)]
    pure: f64,
    /// Folder for index.html and its excerpts/ [default: units-<layer>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Samples per chunk for long recordings (GPU memory grows with it).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SAMPLES)]
    chunk_samples: usize,
}

#[derive(Args)]
struct FiltersArgs {
    /// An sn-wgpu checkpoint (from `sn-wgpu train`, or tools/import_soundnet8.py).
    #[arg(long)]
    weights: PathBuf,
    /// How many filters, from the first.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Where the PNG goes.
    #[arg(long, default_value = "filters.png")]
    out: PathBuf,
    /// Print JSON (with every filter's taps) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SelftestArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Instead of the checks: every conv kernel's relative error against the f64 reference at the
    /// model's real layer shapes, at --batch-size clips of --seconds (slow: the reference runs on
    /// the CPU, a minute or more for SoundNet-8 at 8 x 20 s).
    #[arg(long)]
    real_shapes: bool,
    /// With --real-shapes: soundnet8, soundnet5 or soundnet8-narrowN.
    #[arg(long, default_value = "soundnet8", requires = "real_shapes")]
    model: String,
    /// With --real-shapes.
    #[arg(long, default_value_t = 8, requires = "real_shapes")]
    batch_size: usize,
    /// With --real-shapes.
    #[arg(long, default_value_t = 20.0, requires = "real_shapes")]
    seconds: f64,
}

#[derive(Args)]
struct ProfileArgs {
    /// soundnet8, soundnet5 or soundnet8-narrowN.
    #[arg(long, default_value = "soundnet8")]
    model: String,
    /// Start from a checkpoint's weights (and its model) instead of a fresh initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Seconds of audio per clip.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Steps timed (the table shows their mean).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Untimed steps first, so pipelines are compiled and memory is touched.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Time eval-mode forward passes instead of training steps.
    #[arg(long)]
    inference: bool,
    /// Write the first timed step as a Chrome trace (open it in https://ui.perfetto.dev).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Time each kernel on the CPU (own submission, waited for) even when GPU timestamps exist.
    #[arg(long)]
    cpu_timing: bool,
    /// Run the plain kernels (conv1d.wgsl, separate batchnorm, ReLU and max-pool) instead of the
    /// tiled convolutions and fused batchnorm, to compare the two.
    #[arg(long, conflicts_with = "conv_kernel")]
    plain: bool,
    /// Which convolution kernels run: for each pass the one measured fastest on this adapter
    /// (auto; see `sn-wgpu tune`), or tiled, plain or cpu everywhere they apply.
    #[arg(long, value_enum, default_value = "auto")]
    conv_kernel: ConvKernelArg,
    /// The device's peak FP32 rate in GFLOP/s (datasheet) instead of measuring it.
    #[arg(long)]
    peak_gflops: Option<f64>,
    /// The device's peak memory bandwidth in GB/s (datasheet) instead of measuring it.
    #[arg(long)]
    peak_gbs: Option<f64>,
    #[arg(long, value_enum, default_value = "order")]
    sort: SortBy,
}

#[derive(Args)]
struct ProbeArgs {
    /// Dataset folder with meta.csv (columns filename,fold,target, optionally category) and the
    /// clips under audio/, as ESC-50 and ESC-10 ship.
    dir: PathBuf,
    /// An sn-wgpu checkpoint to extract features with (from `sn-wgpu train`, or
    /// tools/import_soundnet8.py for the authors' pretrained SoundNet-8).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Use the features `sn-wgpu extract --layer L --out DIR` wrote (one <file stem>.npy [C, T] per
    /// clip, from clips tiled to 10 s) instead of running the network.
    #[arg(long, conflicts_with = "weights")]
    features: Option<PathBuf>,
    /// The layer the classifier reads (with --features: a label for what the files hold).
    #[arg(long, default_value = "pool5", conflicts_with = "layers")]
    layer: String,
    /// Several layers, comma-separated (e.g. conv4,conv5,pool5,conv6,conv7,conv8; conv8 is both
    /// heads' logits), probed from one extraction pass into one table and bar chart.
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// svm (one-vs-rest linear SVM, squared hinge, the paper's) or softmax (logistic regression).
    #[arg(long, default_value = "svm")]
    classifier: ClassifierKind,
    /// Inverse regularisation strength, as scikit-learn's C: one value, a comma-separated list, or
    /// auto (1e-4,1e-3,1e-2,0.1,1). From a list, each fold's C is chosen by leave-one-fold-out on
    /// its training folds only (ties: the smallest C).
    #[arg(long, default_value = "0.01")]
    c: CSetting,
    /// The solver's iteration limit: passes over the data per class for svm (default 10000, as
    /// tools/probe_sklearn.py runs scikit-learn), gradient steps for softmax (default 3000). A
    /// solve that stops there before its tolerance is named in a note.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_iter: Option<u64>,
    /// Seconds of audio per excerpt (window) the classifier sees; clips are tiled to 10 s first.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Seconds between excerpt starts [default: --window, no overlap].
    #[arg(long)]
    hop: Option<f64>,
    /// Frames after the last whole window: drop them, or add one window ending on the last frame.
    #[arg(long, default_value = "drop")]
    tail: Tail,
    /// Where the confusion matrix PNG goes (with --layers: one per layer, the layer added to the name).
    #[arg(long, default_value = "confusion.png")]
    confusion: PathBuf,
    /// With --layers: where the bar chart of mean accuracy by layer goes.
    #[arg(long, default_value = "layers.png")]
    layers_chart: PathBuf,
    /// Also write the extracted features as DIR/<layer>/<clip stem>.npy, to rerun with --features DIR.
    #[arg(long, conflicts_with = "features")]
    save_features: Option<PathBuf>,
    /// Also draw a 2-D t-SNE map of the clips (each clip's features averaged over time) here.
    #[arg(long)]
    tsne: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Samples per chunk for long recordings (GPU memory grows with it).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SAMPLES)]
    chunk_samples: usize,
}

#[derive(Args)]
struct PredictArgs {
    /// Audio files (WAV, MP3, FLAC, Ogg Vorbis; any rate, mono or stereo), or folders whose audio
    /// files are all taken, sorted.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// An sn-wgpu checkpoint (from `sn-wgpu train`, or tools/import_soundnet8.py for the authors'
    /// pretrained SoundNet-8).
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Samples per chunk for long recordings (GPU memory grows with it).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SAMPLES)]
    chunk_samples: usize,
    /// Exit zero when some files cannot be read, listing them (the others are predicted either way).
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Args)]
struct ExtractArgs {
    /// Audio files, or folders whose audio files (wav, mp3, flac, ogg) are all taken, sorted.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// An sn-wgpu checkpoint (from `sn-wgpu train`, or tools/import_soundnet8.py).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// conv1..conv7, pool1, pool2, pool5, objects or scenes (head logits).
    #[arg(long)]
    layer: String,
    /// Folder for the .npy files, one per clip, named after the clip's file stem.
    #[arg(long)]
    out: PathBuf,
    /// Pool over time (mean or max): [C] instead of [C, T].
    #[arg(long)]
    pool: Option<Pool>,
    /// Samples per chunk for long recordings (GPU memory grows with it).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SAMPLES)]
    chunk_samples: usize,
    /// Exit zero when some files cannot be read, listing them (the others are extracted either way).
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Args)]
struct TeachArgs {
    /// Audio files, or folders whose audio files (wav, mp3, flac, ogg) are all taken, sorted.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The teacher: an sn-wgpu checkpoint (from `sn-wgpu train`, or tools/import_soundnet8.py).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The dataset folder to write (manifest.csv, teacher/<stem>.<head>.npy); rewritten if present.
    #[arg(long)]
    out: PathBuf,
    /// Softmax temperature of the teacher's logits (above 1: softer targets).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Take only shard K of N (0-based): each input goes to exactly one shard, by a hash of its path.
    #[arg(long)]
    shard: Option<Shard>,
    /// Samples per chunk for long recordings (GPU memory grows with it).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SAMPLES)]
    chunk_samples: usize,
    /// Exit zero when some files cannot be read, listing them (the others are taught either way).
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// The folder of the release's lists ({split}_frames4_NNNN.txt, from lists_public.tar.gz).
    #[arg(long)]
    lists: PathBuf,
    /// The folder holding VGG16_IMNET_{SPLIT}_BNNNN/prob and VGG16_PLACES2_{SPLIT}_BNNNN/prob
    /// (from image_features_public.tar.gz; only the prob files are read).
    #[arg(long)]
    features: PathBuf,
    /// The MP3 root (from mp3_public.tar.gz): the video key K is K.mp3 under it.
    #[arg(long)]
    audio: PathBuf,
    /// Which lists: train or val.
    #[arg(long, value_enum, default_value = "train")]
    split: sn_wgpu::import_soundnet::release::Split,
    /// Where the dataset folders go: OUT/{split}-NNNN per list (a finished one is kept).
    #[arg(long)]
    out: PathBuf,
    /// Take only lists K, K+N, K+2N, ... (0-based, in list order), for one of N machines.
    #[arg(long)]
    shard: Option<Shard>,
}

#[derive(Args)]
struct PackArgs {
    /// Dataset folders to pack (manifest.csv with audio and objects/scenes columns), in order.
    #[arg(long, num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// The pack's folder: pack.json, shard-NNNNN.pack and skipped.txt.
    #[arg(long)]
    out: PathBuf,
    /// A shard closes once it holds this many megabytes (10^6 bytes).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    shard_mb: u64,
    /// Leave bad items out (listed in skipped.txt) instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Pack again into a folder that holds a finished pack (only files sn-wgpu wrote are replaced).
    #[arg(long)]
    overwrite: bool,
}

fn main() -> Result<()> {
    // Every command picks conv kernels by what was measured on this adapter (and measures what
    // train, profile and tune need); the library alone keeps its built-in first guesses.
    sn_wgpu::gpu::tuning::use_cache_file();
    match Cli::parse().command {
        Command::Info => print!("{}", sn_wgpu::gpu::info::report()?),
        Command::Train(args) if args.folds.is_some() => {
            let spec = args.folds.clone().expect("checked");
            let report = train::folds::run_folds(args, &spec)?;
            print!("{}", report.describe());
            if let Some(signal) = report.interrupted {
                std::process::exit(128 + signal);
            }
        }
        Command::Train(args) => {
            let opts = args.resolve()?;
            let summary = train::run(&opts)?;
            print!("{}", summary.describe(opts.settings.is_demo()));
            if let Some(signal) = summary.interrupted {
                // A script must see an interrupted run as interrupted: 130 for Ctrl-C, 143 for SIGTERM.
                std::process::exit(128 + signal);
            }
        }
        Command::Predict(a) => {
            let opts =
                PredictOptions { paths: a.paths, weights: a.weights, top_k: a.top_k, chunk_samples: a.chunk_samples };
            let predictions = eval::predict(&sn_wgpu::Gpu::new()?, &opts)?;
            print!("{}", if a.json { predictions.json()? } else { predictions.text() });
            let done = predictions.clips.len();
            if let Some(skipped) = eval::bad_files::settle("predict", done, &predictions.errors, a.skip_bad)? {
                eprint!("{skipped}");
            }
        }
        Command::Extract(a) => {
            let opts = ExtractOptions {
                paths: a.paths,
                weights: a.weights,
                layer: a.layer,
                out: a.out,
                pool: a.pool,
                chunk_samples: a.chunk_samples,
            };
            let summary = eval::extract(&sn_wgpu::Gpu::new()?, &opts)?;
            print!("{}", summary.describe());
            let done = summary.written.len();
            if let Some(skipped) = eval::bad_files::settle("extract", done, &summary.errors, a.skip_bad)? {
                eprint!("{skipped}");
            }
        }
        Command::Teach(a) => {
            let opts = TeachOptions {
                paths: a.paths,
                weights: a.weights,
                out: a.out,
                temperature: a.temperature,
                shard: a.shard,
                chunk_samples: a.chunk_samples,
            };
            let summary = eval::teach(&sn_wgpu::Gpu::new()?, &opts)?;
            print!("{}", summary.describe());
            let done = summary.taught.len();
            // A shard whose every input is bad is still a shard: with --skip-bad its empty dataset
            // joins the others (`train --data` takes it) and the run goes on.
            if a.skip_bad && done == 0 && !summary.errors.is_empty() {
                eprint!("{}", eval::bad_files::all_skipped("teach", &summary.errors));
            } else if let Some(skipped) = eval::bad_files::settle("teach", done, &summary.errors, a.skip_bad)? {
                eprint!("{skipped}");
            }
        }
        Command::ImportSoundnet(a) => {
            let opts = sn_wgpu::import_soundnet::ImportOptions {
                lists: a.lists,
                features: a.features,
                audio: a.audio,
                split: a.split,
                out: a.out,
                shard: a.shard,
            };
            let summary = sn_wgpu::import_soundnet::import(&opts)?;
            if let Some(refused) = summary.refused() {
                anyhow::bail!("{refused}");
            }
        }
        Command::Pack(a) => {
            let opts = sn_wgpu::pack::PackOptions {
                data: a.data,
                out: a.out,
                shard_bytes: a.shard_mb * 1_000_000,
                skip_bad: a.skip_bad,
                overwrite: a.overwrite,
            };
            println!("{}", sn_wgpu::pack::pack(&opts)?);
        }
        Command::Profile(a) => {
            let opts = ProfileOptions {
                model: a.model,
                weights: a.weights,
                batch: a.batch_size,
                seconds: a.seconds,
                steps: a.steps,
                warmup: a.warmup,
                inference: a.inference,
                cpu_timing: a.cpu_timing,
                plain: a.plain,
                conv_kernel: a.conv_kernel.into(),
                peak_gflops: a.peak_gflops,
                peak_gbs: a.peak_gbs,
            };
            let report = profile::run(&sn_wgpu::Gpu::new()?, &opts)?;
            print!("{}", report.table(a.sort));
            if let Some(path) = &a.trace {
                report.write_trace(path)?;
                println!("trace:    {} (open in https://ui.perfetto.dev or chrome://tracing)", path.display());
            }
        }
        Command::Probe(a) => {
            // A grid replaces the fixed C, which is then never read.
            let (c, c_grid) = match a.c {
                CSetting::Fixed(c) => (c, None),
                CSetting::Grid { grid } => (f64::NAN, Some(grid)),
            };
            let ext = Extensions {
                layers_png: (a.layers.len() > 1).then(|| a.layers_chart.clone()),
                layers: a.layers,
                windows: WindowSpec::new(a.window, a.hop.unwrap_or(a.window), a.tail)?,
                c_grid,
                max_iter: a.max_iter.map(|n| n as usize),
                save_features: a.save_features,
            };
            let opts = ProbeOptions {
                dir: a.dir,
                weights: a.weights,
                features: a.features,
                layer: a.layer,
                classifier: a.classifier,
                c,
                confusion_png: a.confusion,
                tsne_png: a.tsne,
                chunk_samples: a.chunk_samples,
            };
            let run = probe::run_with(&opts, &ext)?;
            print!("{}", if a.json { run.json()? } else { run.text() });
        }
        Command::Units(a) => {
            let opts = UnitsOptions {
                out: a.out.unwrap_or_else(|| PathBuf::from(format!("units-{}", a.layer))),
                dir: a.dir,
                weights: a.weights,
                layer: a.layer,
                top_k: a.top_k,
                units: a.units,
                pure: a.pure,
                chunk_samples: a.chunk_samples,
            };
            let report = units::run(&sn_wgpu::Gpu::new()?, &opts)?;
            print!("{}", if a.json { report.json()? } else { report.text() });
        }
        Command::Filters(a) => {
            let report = filters::run(&FiltersOptions { weights: a.weights, count: a.count, png: a.out })?;
            print!("{}", if a.json { report.json()? } else { report.text() });
        }
        Command::Tune(a) => {
            let gpu = sn_wgpu::Gpu::new()?;
            let arch = sn_wgpu::model::Arch::by_name(&a.model)?;
            let samples = sn_wgpu::data::Crop::for_arch(&arch, a.seconds)?.samples;
            println!("adapter: {}", gpu.describe());
            for note in gpu.tuning.take_notes() {
                eprintln!("{note}");
            }
            let Some(path) = gpu.tuning.path().map(|p| p.to_path_buf()) else {
                anyhow::bail!("kernel tuning is off (SN_WGPU_TUNE_CACHE=off, or SN_WGPU_KERNELS forces a class)");
            };
            let tuned =
                sn_wgpu::model::tune::tune_model(&gpu, &arch, a.batch_size, samples, !a.inference, |i, n, what| {
                    eprintln!("measuring {}/{n}: {what}", i + 1);
                })?;
            print!("{}", sn_wgpu::model::tune::table(&tuned));
            let measured = tuned.iter().filter(|t| t.measured_now).count();
            println!(
                "{} passes of {} at batch {} x {} s: {measured} measured now, {} from {}",
                tuned.len(),
                arch.name,
                a.batch_size,
                a.seconds,
                tuned.len() - measured,
                path.display()
            );
        }
        Command::Selftest(a) if a.real_shapes => {
            let gpu = sn_wgpu::Gpu::new()?;
            let arch = sn_wgpu::model::Arch::by_name(&a.model)?;
            let samples = sn_wgpu::data::Crop::for_arch(&arch, a.seconds)?.samples;
            let errors = selftest::real_shapes::measure(&gpu, &arch, a.batch_size, samples)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&errors)?);
            } else {
                println!("adapter: {}", gpu.describe());
                println!(
                    "{} at batch {} x {} s: relative error against the f64 reference\n",
                    arch.name, a.batch_size, a.seconds
                );
                print!("{}", selftest::real_shapes::table(&errors));
            }
        }
        Command::Selftest(a) => {
            let report = selftest::run(&sn_wgpu::Gpu::new()?)?;
            print!("{}", if a.json { report.json()? } else { report.text() });
            if report.failed() > 0 {
                // The report is the message: it has been printed, so fail without another.
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
