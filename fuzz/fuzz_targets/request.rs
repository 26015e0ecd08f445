#![no_main]
//! See `imserver::fuzzing::request` for the input format and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imserver::fuzzing::request(data);
});
