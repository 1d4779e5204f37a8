//! The backend seam from outside: `--device` names parse, the CPU backend is the default, and a
//! device this build has no backend for is a named error, not a panic.

use std::path::PathBuf;

use rwkv_model::{Device, Error, LoadOptions, Model};

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/random-x070-C64-L2-H4N16.safetensors")
}

#[test]
fn device_names_parse_and_print() {
    assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
    assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
    assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
    for bad in ["gpu", "cuda:", "cuda:x", "CPU"] {
        let e = bad.parse::<Device>().unwrap_err();
        assert!(e.contains("cpu, cuda, cuda:N or candle-cpu"), "{bad}: {e}");
    }
    assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    assert_eq!("candle-cpu".parse::<Device>(), Ok(Device::CandleCpu));
    assert_eq!(Device::CandleCpu.to_string(), "candle-cpu");
    assert_eq!(Device::default(), Device::Cpu);
}

#[test]
fn the_cpu_backend_is_the_default() {
    let m = Model::load(&model_path()).unwrap();
    assert_eq!(m.device(), Device::Cpu);
}

#[test]
fn a_device_without_a_backend_in_this_build_is_a_named_error() {
    let opts = LoadOptions::default().with_device(Device::Cuda(0));
    match Model::load_with(&model_path(), &opts) {
        Err(e @ Error::Device { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("cuda:0") && msg.contains("CUDA") && msg.contains("--features cuda"),
                "{msg}"
            );
        }
        other => panic!("expected a device error, got {other:?}"),
    }
}

/// Each backend says what it runs, and what it does not run is refused by name before any
/// weight is read, in every build.
#[test]
fn backends_declare_what_they_run_and_refuse_the_rest_by_name() {
    use rwkv_model::{FoldPrecision, Generation, Weights};
    let cpu = Device::Cpu.support();
    assert_eq!(cpu.generations.len(), 4);
    assert!(cpu.weights.contains(&Weights::Int8) && cpu.fold_precisions[0] == FoldPrecision::F32);
    for d in [Device::Cuda(0), Device::CandleCpu] {
        let s = d.support();
        assert_eq!(s.generations, &[Generation::V7]);
        assert!(!s.weights.contains(&Weights::Int8) && !s.weights.contains(&Weights::F32));
        assert_eq!(s.fold_precisions, &[FoldPrecision::Bf16]);
        let e = s.check(d, Generation::V7, Weights::Int8).unwrap_err().to_string();
        assert!(
            e.contains(&d.to_string()) && e.contains("--weights int8 runs on --device cpu"),
            "{e}"
        );
        let e = s.check(d, Generation::V5, Weights::Auto).unwrap_err().to_string();
        assert!(e.contains("RWKV-5 runs on the CPU only"), "{e}");
        let e = s.check_fold(d, FoldPrecision::F32).unwrap_err().to_string();
        assert!(e.contains("fold precision f32 needs --device cpu"), "{e}");
        // Through the loader: refused before the file is read (no such file needed).
        let opts = LoadOptions::default().with_device(d).with_weights(Weights::Int8);
        let e = Model::load_with(&model_path(), &opts).unwrap_err().to_string();
        assert!(e.contains("--weights int8"), "{e}");
    }
    let mut m = Model::load(&model_path()).unwrap();
    assert!(m.try_set_fold_precision(FoldPrecision::Bf16).is_ok());
    assert_eq!(m.fold_precision(), FoldPrecision::Bf16);
}
