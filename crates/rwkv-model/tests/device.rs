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
        assert!(e.contains("cpu, cuda or cuda:N"), "{bad}: {e}");
    }
    assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
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
