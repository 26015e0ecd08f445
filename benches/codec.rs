//! Frame encode/decode and verifier cost.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imserver::protocol::{self, wire};
use std::hint::black_box;

fn import_frame(n: usize) -> bytes::Bytes {
    protocol::client_frame(1, |fbb| {
        let v: Vec<_> = (0..n)
            .map(|i| {
                let id = fbb.create_string(&format!("user-{i}"));
                let nick = fbb.create_string("a nickname of some length");
                wire::UserProfile::create(
                    fbb,
                    &wire::UserProfileArgs { user_id: Some(id), nickname: Some(nick), ..Default::default() },
                )
            })
            .collect();
        let users = fbb.create_vector(&v);
        let r = wire::ImportUserReq::create(fbb, &wire::ImportUserReqArgs { users: Some(users) });
        (wire::Request::ImportUserReq, r.as_union_value())
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_ping", |b| {
        b.iter(|| {
            protocol::client_frame(black_box(7), |fbb| {
                let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
                (wire::Request::PingReq, p.as_union_value())
            })
        })
    });
    g.bench_function("encode_error_response", |b| {
        b.iter(|| protocol::error(black_box(7), wire::ErrorCode::UserNotFound, "user not found"))
    });
    let ping = protocol::client_frame(7, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request::PingReq, p.as_union_value())
    });
    g.bench_function("verify_decode_ping", |b| {
        b.iter(|| {
            let f = protocol::decode_client(black_box(&ping[4..])).unwrap();
            black_box(f.request_as_ping_req().unwrap().client_time_ms())
        })
    });
    let big = import_frame(100);
    g.bench_function("verify_import_100_users", |b| {
        b.iter(|| {
            let f = protocol::decode_client(black_box(&big[4..])).unwrap();
            black_box(f.request_as_import_user_req().unwrap().users().unwrap().len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
