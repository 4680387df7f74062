//! Any bytes given to the scenario parser give a scenario or diagnostics, never a panic,
//! and the diagnostics render.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(diagnostics) = harness_scenario::parse_bytes("fuzz.yaml", data) {
        let _ = diagnostics.render();
        let _ = diagnostics.to_plain();
    }
});
