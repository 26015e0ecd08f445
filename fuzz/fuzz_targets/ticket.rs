#![no_main]
//! See `imserver::fuzzing::ticket` for the input format and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imserver::fuzzing::ticket(data));
