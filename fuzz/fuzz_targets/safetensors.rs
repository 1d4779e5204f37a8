//! Fuzz the safetensors reader, then build a model from whatever it accepts: any input
//! must give `Ok` or `Err`, never a panic, and allocate no more than the input justifies.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = rwkv_formats::loader::read_safetensors_bytes(Path::new("fuzz.safetensors"), data) {
        let _ = rwkv_model::Model::from_tensors(&map);
    }
});
