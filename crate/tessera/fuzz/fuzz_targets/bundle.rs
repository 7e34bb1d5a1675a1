//! Arbitrary bytes -> manifest parsing -> bundle loading (checksums, safetensors, configs, names and
//! shapes), as the browser receives a downloaded bundle. Any panic or abort is a bug.
#![no_main]
use burn::prelude::*;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DEVICE: Device = Device::flex();
}

fuzz_target!(|data: &[u8]| {
    DEVICE.with(|d| {
        let _ = tessera::bundle::fuzz_entry::load_untrusted(data, d);
    });
});
