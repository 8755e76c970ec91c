//! The GPU context: adapter report, binding limits enforced with a clear message, dispatch grids.

mod common;
use common::*;
use sn_wgpu::gpu::{grid, groups_for, MAX_GROUPS_PER_DIM};
use sn_wgpu::Tensor;

#[test]
fn info_reports_the_chosen_adapter_and_its_limits() {
    let report = sn_wgpu::gpu::info::report().unwrap();
    assert!(report.contains(&gpu().info.name), "{report}");
    for needed in ["max_storage_buffer_binding_size", "timestamp queries", "SoundNet-8 at 20 s"] {
        assert!(report.contains(needed), "missing {needed}: {report}");
    }
}

#[test]
fn a_tensor_larger_than_one_binding_is_refused_with_the_reason() {
    let g = gpu();
    let limit = g.limits.max_storage_buffer_binding_size.min(g.limits.max_buffer_size);
    let elements = (limit / 4 + 1) as usize;
    let err =
        Tensor::zeros(g, &[elements], "conv1 output").err().expect("a tensor past the binding limit must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("conv1 output")
            && msg.contains("max_storage_buffer_binding_size")
            && msg.contains("smaller batch"),
        "{msg}"
    );
    assert!(Tensor::zeros(g, &[1024], "small").is_ok());
}

#[test]
fn grids_stay_within_65535_groups_per_dimension_and_cover_the_work() {
    for groups in [1, 2, 65_535, 65_536, 1 << 20, 8_200_000] {
        let [x, y, z] = grid(groups);
        assert!(x <= MAX_GROUPS_PER_DIM && y <= MAX_GROUPS_PER_DIM && z == 1, "{groups}: {x} x {y}");
        assert!(u64::from(x) * u64::from(y) >= u64::from(groups), "{groups}: {x} x {y} is too few");
        assert!(u64::from(x) * u64::from(y) < u64::from(groups) + u64::from(x), "{groups}: a whole spare row");
    }
    assert_eq!(groups_for(0, 256), 1);
    assert_eq!(groups_for(257, 256), 2);
}
