//! Authentication: the signed login ticket. No I/O; time is passed in.

pub mod ticket;
