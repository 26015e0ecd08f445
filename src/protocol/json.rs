//! JSON for the wire tables, read and written by the schema itself: the binary schema flatc
//! writes beside the generated code (`generated/im.bfbs`, checked in CI like the code). So a
//! JSON request is the same table a binary client sends, field for field (the schema's field
//! names; enums by name or number; `[ubyte]` as base64), built into the same bytes and run by
//! the same dispatch; and an answer is the table the binary client would get, written out.
//! Nothing here knows any operation.
//!
//! Reading refuses what the schema does not have: unknown fields, wrong JSON types, numbers
//! out of their field's range, unknown enum names. Every error names the field's path.

use std::sync::OnceLock;

use base64::Engine;
use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Table, TableFinishedWIPOffset, Vector, WIPOffset};
use flatbuffers_reflection::reflection::{self, BaseType, Field, Object, Schema};
use serde_json::{Map, Value};

static BFBS: &[u8] = include_bytes!("generated/im.bfbs");

/// The tables' namespace in the schema.
const NAMESPACE: &str = "im.wire.";

/// Why a JSON body is not the table it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

fn err(path: &str, what: impl std::fmt::Display) -> JsonError {
    JsonError(format!("{path}: {what}"))
}

/// The schema (verified once).
pub fn schema() -> Schema<'static> {
    static SCHEMA: OnceLock<Schema<'static>> = OnceLock::new();
    *SCHEMA.get_or_init(|| reflection::root_as_schema(BFBS).expect("the committed binary schema verifies"))
}

/// The table named `name` (without the namespace).
pub fn object(name: &str) -> Option<Object<'static>> {
    let full = format!("{NAMESPACE}{name}");
    schema().objects().lookup_by_key(full.as_str(), |o, k| o.key_compare_with_value(k))
}

/// The name of `o` without the namespace.
pub fn short_name<'a>(o: &Object<'a>) -> &'a str {
    o.name().strip_prefix(NAMESPACE).unwrap_or(o.name())
}

/// Builds table `o` from `v` (a JSON object) in `fbb`.
pub fn build<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    o: Object<'static>,
    v: &Value,
    path: &str,
) -> Result<WIPOffset<TableFinishedWIPOffset>, JsonError> {
    let map = v.as_object().ok_or_else(|| err(path, format!("expected an object ({})", short_name(&o))))?;
    let fields = o.fields();
    for k in map.keys() {
        if fields.lookup_by_key(k.as_str(), |f, k| f.key_compare_with_value(k)).is_none_or(|f| f.deprecated()) {
            return Err(err(path, format!("unknown field {k:?} in {}", short_name(&o))));
        }
    }
    let mut offsets = Vec::new();
    let mut scalars = Vec::new();
    for f in fields.iter().filter(|f| !f.deprecated()) {
        let here = format!("{path}.{}", f.name());
        let Some(val) = map.get(f.name()).filter(|v| !v.is_null()) else {
            if f.required() {
                return Err(err(&here, "required"));
            }
            continue;
        };
        let ty = f.type_();
        let off = match ty.base_type() {
            BaseType::String => {
                let s = val.as_str().ok_or_else(|| err(&here, "expected a string"))?;
                fbb.create_string(s).value()
            }
            BaseType::Obj => {
                let sub = schema().objects().get(ty.index() as usize);
                build(fbb, sub, val, &here)?.value()
            }
            BaseType::Vector => vector(fbb, &f, val, &here)?,
            BaseType::Union | BaseType::UType | BaseType::Array | BaseType::Vector64 => {
                return Err(err(&here, "not accepted in JSON"));
            }
            _ => {
                scalars.push((f, scalar(&f, ty.base_type(), val, &here)?));
                continue;
            }
        };
        offsets.push((f.offset(), off));
    }
    let start = fbb.start_table();
    for (slot, off) in offsets {
        fbb.push_slot_always::<WIPOffset<()>>(slot, WIPOffset::new(off));
    }
    for (f, n) in scalars {
        push_scalar(fbb, &f, n);
    }
    Ok(fbb.end_table(start))
}

/// A scalar read from JSON: integers (and enums, bools) as `i128` so every type's range can be
/// checked; floats as `f64`.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Real(f64),
}

fn range(t: BaseType) -> (i128, i128) {
    match t {
        BaseType::Bool => (0, 1),
        BaseType::Byte => (i8::MIN as i128, i8::MAX as i128),
        BaseType::UByte | BaseType::UType => (0, u8::MAX as i128),
        BaseType::Short => (i16::MIN as i128, i16::MAX as i128),
        BaseType::UShort => (0, u16::MAX as i128),
        BaseType::Int => (i32::MIN as i128, i32::MAX as i128),
        BaseType::UInt => (0, u32::MAX as i128),
        BaseType::Long => (i64::MIN as i128, i64::MAX as i128),
        _ => (0, u64::MAX as i128),
    }
}

/// Reads one scalar of type `t` (the field's, or its vector's element type) for field `f`.
fn scalar(f: &Field, t: BaseType, v: &Value, path: &str) -> Result<Num, JsonError> {
    if matches!(t, BaseType::Float | BaseType::Double) {
        return v.as_f64().map(Num::Real).ok_or_else(|| err(path, "expected a number"));
    }
    let n: i128 = match v {
        Value::Bool(b) if t == BaseType::Bool => *b as i128,
        Value::Number(n) if t != BaseType::Bool => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i as i128,
            (_, Some(u)) => u as i128,
            _ => return Err(err(path, "expected an integer")),
        },
        // An enum by name.
        Value::String(s) if f.type_().index() >= 0 => {
            let e = schema().enums().get(f.type_().index() as usize);
            let found = e.values().iter().find(|ev| ev.name() == s.as_str());
            found.map(|ev| ev.value() as i128).ok_or_else(|| err(path, format!("unknown {} {s:?}", e.name())))?
        }
        _ if t == BaseType::Bool => return Err(err(path, "expected true or false")),
        _ => return Err(err(path, "expected an integer")),
    };
    let (lo, hi) = range(t);
    if n < lo || n > hi {
        return Err(err(path, format!("{n} is out of range")));
    }
    Ok(Num::Int(n))
}

fn push_scalar(fbb: &mut FlatBufferBuilder<'_>, f: &Field, n: Num) {
    let slot = f.offset();
    let (d, dr) = (f.default_integer(), f.default_real());
    macro_rules! push {
        ($t:ty, $v:expr, $d:expr) => {
            if f.optional() {
                fbb.push_slot_always::<$t>(slot, $v)
            } else {
                fbb.push_slot::<$t>(slot, $v, $d)
            }
        };
    }
    match (f.type_().base_type(), n) {
        (BaseType::Float, Num::Real(x)) => push!(f32, x as f32, dr as f32),
        (BaseType::Double, Num::Real(x)) => push!(f64, x, dr),
        (BaseType::Bool, Num::Int(x)) => push!(bool, x != 0, d != 0),
        (BaseType::Byte, Num::Int(x)) => push!(i8, x as i8, d as i8),
        (BaseType::UByte, Num::Int(x)) => push!(u8, x as u8, d as u8),
        (BaseType::Short, Num::Int(x)) => push!(i16, x as i16, d as i16),
        (BaseType::UShort, Num::Int(x)) => push!(u16, x as u16, d as u16),
        (BaseType::Int, Num::Int(x)) => push!(i32, x as i32, d as i32),
        (BaseType::UInt, Num::Int(x)) => push!(u32, x as u32, d as u32),
        (BaseType::Long, Num::Int(x)) => push!(i64, x as i64, d),
        (BaseType::ULong, Num::Int(x)) => push!(u64, x as u64, d as u64),
        _ => {}
    }
}

/// A vector field: strings, tables, bytes (base64, or an array of numbers) or scalars.
fn vector(fbb: &mut FlatBufferBuilder<'_>, f: &Field, v: &Value, path: &str) -> Result<u32, JsonError> {
    let el = f.type_().element();
    if el == BaseType::UByte {
        if let Value::String(s) = v {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| err(path, "not base64"))?;
            return Ok(fbb.create_vector(&bytes).value());
        }
    }
    let items = v.as_array().ok_or_else(|| err(path, "expected an array"))?;
    let at = |i: usize| format!("{path}[{i}]");
    Ok(match el {
        BaseType::String => {
            let mut offs = Vec::with_capacity(items.len());
            for (i, s) in items.iter().enumerate() {
                offs.push(fbb.create_string(s.as_str().ok_or_else(|| err(&at(i), "expected a string"))?));
            }
            fbb.create_vector(&offs).value()
        }
        BaseType::Obj => {
            let sub = schema().objects().get(f.type_().index() as usize);
            let mut offs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                offs.push(build(fbb, sub, item, &at(i))?);
            }
            fbb.create_vector(&offs).value()
        }
        BaseType::Float | BaseType::Double | BaseType::Union | BaseType::UType | BaseType::Vector => {
            return Err(err(path, "not accepted in JSON"));
        }
        t => {
            let mut ns = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match scalar(f, t, item, &at(i))? {
                    Num::Int(n) => ns.push(n),
                    Num::Real(_) => return Err(err(&at(i), "expected an integer")),
                }
            }
            macro_rules! vec_of {
                ($t:ty) => {{
                    let v: Vec<$t> = ns.iter().map(|&n| n as $t).collect();
                    fbb.create_vector(&v).value()
                }};
            }
            match t {
                BaseType::Bool => {
                    let v: Vec<bool> = ns.iter().map(|&n| n != 0).collect();
                    fbb.create_vector(&v).value()
                }
                BaseType::Byte => vec_of!(i8),
                BaseType::UByte => vec_of!(u8),
                BaseType::Short => vec_of!(i16),
                BaseType::UShort => vec_of!(u16),
                BaseType::Int => vec_of!(i32),
                BaseType::UInt => vec_of!(u32),
                BaseType::Long => vec_of!(i64),
                _ => vec_of!(u64),
            }
        }
    })
}

/// Writes table `t` (of type `o`) as JSON: every scalar field (its default when absent), the
/// strings, vectors and tables present; enums by name.
///
/// # Safety
/// `t` must be a table of type `o` in a buffer verified against this schema (the generated
/// verifier of the same schema, `protocol::decode_server`, does that).
pub unsafe fn write(o: &Object, t: &Table) -> Value {
    let mut out = Map::new();
    for f in o.fields().iter().filter(|f| !f.deprecated()) {
        let ty = f.type_();
        let slot = f.offset();
        // SAFETY (each read below): the slot has the type the schema gives it (see above).
        let v = unsafe {
            match ty.base_type() {
                BaseType::String => t.get::<ForwardsUOffset<&str>>(slot, None).map(Value::from),
                BaseType::Obj => {
                    let sub = schema().objects().get(ty.index() as usize);
                    t.get::<ForwardsUOffset<Table>>(slot, None).map(|s| write(&sub, &s))
                }
                BaseType::Vector => write_vector(&f, t),
                BaseType::Union | BaseType::UType | BaseType::Array | BaseType::Vector64 => None,
                b => Some(read_scalar(&f, b, t)),
            }
        };
        if let Some(v) = v {
            out.insert(f.name().to_owned(), v);
        }
    }
    Value::Object(out)
}

/// An enum value's name, or the number when this schema has no name for it.
fn enum_name(f: &Field, n: i64) -> Value {
    let idx = f.type_().index();
    if idx < 0 {
        return n.into();
    }
    let e = schema().enums().get(idx as usize);
    e.values().iter().find(|v| v.value() == n).map_or(n.into(), |v| v.name().into())
}

/// # Safety
/// As `write`.
unsafe fn read_scalar(f: &Field, b: BaseType, t: &Table) -> Value {
    let slot = f.offset();
    let d = f.default_integer();
    // SAFETY: as `write`.
    unsafe {
        let n: i64 = match b {
            BaseType::Bool => return t.get::<bool>(slot, Some(d != 0)).unwrap_or_default().into(),
            BaseType::Float => {
                return f64::from(t.get::<f32>(slot, Some(f.default_real() as f32)).unwrap_or(0.0)).into()
            }
            BaseType::Double => return t.get::<f64>(slot, Some(f.default_real())).unwrap_or(0.0).into(),
            BaseType::ULong => return t.get::<u64>(slot, Some(d as u64)).unwrap_or_default().into(),
            BaseType::Byte => t.get::<i8>(slot, Some(d as i8)).unwrap_or_default().into(),
            BaseType::UByte => t.get::<u8>(slot, Some(d as u8)).unwrap_or_default().into(),
            BaseType::Short => t.get::<i16>(slot, Some(d as i16)).unwrap_or_default().into(),
            BaseType::UShort => t.get::<u16>(slot, Some(d as u16)).unwrap_or_default().into(),
            BaseType::Int => t.get::<i32>(slot, Some(d as i32)).unwrap_or_default().into(),
            BaseType::UInt => t.get::<u32>(slot, Some(d as u32)).unwrap_or_default().into(),
            _ => t.get::<i64>(slot, Some(d)).unwrap_or_default(),
        };
        enum_name(f, n)
    }
}

/// # Safety
/// As `write`.
unsafe fn write_vector(f: &Field, t: &Table) -> Option<Value> {
    let slot = f.offset();
    macro_rules! list {
        ($t:ty, $map:expr) => {
            t.get::<ForwardsUOffset<Vector<$t>>>(slot, None).map(|v| Value::Array(v.iter().map($map).collect()))
        };
    }
    // SAFETY: as `write`.
    unsafe {
        match f.type_().element() {
            BaseType::UByte if f.type_().index() < 0 => t
                .get::<ForwardsUOffset<Vector<u8>>>(slot, None)
                .map(|v| base64::engine::general_purpose::STANDARD.encode(v.bytes()).into()),
            BaseType::String => list!(ForwardsUOffset<&str>, Value::from),
            BaseType::Obj => {
                let sub = schema().objects().get(f.type_().index() as usize);
                list!(ForwardsUOffset<Table>, |s| write(&sub, &s))
            }
            BaseType::Bool => list!(bool, Value::from),
            BaseType::Byte => list!(i8, |n| enum_name(f, n.into())),
            BaseType::UByte => list!(u8, |n| enum_name(f, n.into())),
            BaseType::Short => list!(i16, |n| enum_name(f, n.into())),
            BaseType::UShort => list!(u16, |n| enum_name(f, n.into())),
            BaseType::Int => list!(i32, |n| enum_name(f, n.into())),
            BaseType::UInt => list!(u32, |n| enum_name(f, n.into())),
            BaseType::Long => list!(i64, |n| enum_name(f, n)),
            BaseType::ULong => list!(u64, Value::from),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire;

    fn round_trip(name: &str, v: Value) -> Result<Value, JsonError> {
        let o = object(name).unwrap();
        let mut fbb = FlatBufferBuilder::new();
        let t = build(&mut fbb, o, &v, "$")?;
        fbb.finish_minimal(t);
        let buf = fbb.finished_data().to_vec();
        // SAFETY: just built from the same schema.
        let root = unsafe { flatbuffers_reflection::get_any_root(&buf) };
        Ok(unsafe { write(&o, &root) })
    }

    #[test]
    fn a_request_built_from_json_is_the_table_the_generated_code_reads() {
        let v = serde_json::json!({
            "users": [{"user_id": "alice", "nickname": "Al", "gender": "Female"}, {"user_id": "bob", "gender": 1}]
        });
        let o = object("ImportUserReq").unwrap();
        let mut fbb = FlatBufferBuilder::new();
        let t = build(&mut fbb, o, &v, "$").unwrap();
        fbb.finish_minimal(t);
        let r = flatbuffers::root::<wire::ImportUserReq>(fbb.finished_data()).unwrap();
        let users: Vec<_> = r.users().unwrap().iter().collect();
        assert_eq!(users[0].user_id(), Some("alice"));
        assert_eq!(users[0].nickname(), Some("Al"));
        assert_eq!(users[0].gender(), wire::Gender::Female);
        assert_eq!(users[1].gender(), wire::Gender(1));
    }

    #[test]
    fn written_back_with_defaults_enum_names_and_base64() {
        let v = serde_json::json!({"conv": {"type": "P2P", "peer": "bob"}, "client_id": "c1", "msg_type": 7, "body": "aGk="});
        let back = round_trip("SendMessageReq", v).unwrap();
        assert_eq!(back["conv"]["peer"], "bob");
        assert_eq!(back["conv"]["type"], "P2P");
        assert_eq!(back["msg_type"], 7);
        assert_eq!(back["body"], "aGk=");
        let g =
            round_trip("GetUserInfoReq", serde_json::json!({"user_ids": ["a"], "fields": ["Nickname", 2]})).unwrap();
        assert_eq!(g["fields"], serde_json::json!(["Nickname", "Gender"]));
    }

    #[test]
    fn what_the_schema_does_not_have_is_refused_with_its_path() {
        let e = |name: &str, v: Value| round_trip(name, v).unwrap_err().0;
        assert!(e("ImportUserReq", serde_json::json!({"userz": []})).contains("unknown field \"userz\""));
        assert!(e("ImportUserReq", serde_json::json!({"users": [{"user_id": 5}]})).contains("$.users[0].user_id"));
        assert!(e("ImportUserReq", serde_json::json!({"users": [{"gender": "Robot"}]})).contains("unknown"));
        assert!(e("ImportUserReq", serde_json::json!({"users": [{"gender": 300}]})).contains("out of range"));
        assert!(e("ImportUserReq", serde_json::json!([])).contains("expected an object"));
        assert!(e("SendMessageReq", serde_json::json!({"body": "%%"})).contains("base64"));
    }
}
