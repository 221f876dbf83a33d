//! Just enough ONNX to take Silero VAD v6's weights out of its graph: a
//! bounds-checked protobuf reader (no recursion beyond model → graph → node /
//! tensor), the graph's operator sequence checked against v6's, and the weights
//! found through the nodes that use them (not through exporter-made names).

use crate::{Error, Result};

/// One protobuf field's value.
enum Value<'a> {
    Varint(u64),
    Fixed(u64),
    Bytes(&'a [u8]),
}

struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(m: impl std::fmt::Display) -> Error {
    Error::Convert(format!("Silero VAD ONNX file: {m}"))
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf, pos: 0 }
    }
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("a field of {n} bytes runs past its message")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// The next (field number, value), or `None` at the end of the message.
    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Value::Fixed(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed(u64::from(u32::from_le_bytes(
                    b.try_into().unwrap_or([0; 4]),
                )))
            }
            t => return Err(bad(format!("unsupported protobuf wire type {t}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn text(b: &[u8], what: &str) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

/// A repeated int64 field, packed or not.
fn push_ints(v: Value, out: &mut Vec<i64>) -> Result<()> {
    match v {
        Value::Varint(x) => out.push(x as i64),
        Value::Bytes(b) => {
            let mut f = Fields::new(b);
            while f.pos < b.len() {
                out.push(f.varint()? as i64);
            }
        }
        Value::Fixed(_) => return Err(bad("an integer list of fixed-width values")),
    }
    Ok(())
}

const FLOAT: u64 = 1;
const INT64: u64 = 7;
/// Elements one tensor may hold (Silero's largest has 66 048).
const MAX_ELEMENTS: usize = 1 << 24;

#[derive(Default)]
struct Tensor {
    name: String,
    dims: Vec<i64>,
    data_type: u64,
    raw: Option<Vec<u8>>,
    floats: Vec<f32>,
    ints: Vec<i64>,
    external: bool,
}

impl Tensor {
    fn parse(b: &[u8]) -> Result<Tensor> {
        let mut t = Tensor::default();
        let mut f = Fields::new(b);
        while let Some((n, v)) = f.next()? {
            match (n, v) {
                (1, v) => push_ints(v, &mut t.dims)?,
                (2, Value::Varint(x)) => t.data_type = x,
                (4, Value::Bytes(b)) => t.floats.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
                (4, Value::Fixed(x)) => t.floats.push(f32::from_bits(x as u32)),
                (7, v) => push_ints(v, &mut t.ints)?,
                (8, Value::Bytes(b)) => t.name = text(b, "a tensor name")?,
                (9, Value::Bytes(b)) => t.raw = Some(b.to_vec()),
                (13, _) => t.external = true,
                (14, Value::Varint(x)) => t.external |= x == 1,
                _ => {}
            }
        }
        Ok(t)
    }
    fn elements(&self) -> Result<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| {
                usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
            })
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| bad(format!("tensor {} has dims {:?}", self.name, self.dims)))
    }
    fn f32s(&self) -> Result<Vec<f32>> {
        if self.external {
            return Err(bad(format!(
                "tensor {} is stored outside the file",
                self.name
            )));
        }
        if self.data_type != FLOAT {
            return Err(bad(format!(
                "tensor {} has ONNX type {}, not float",
                self.name, self.data_type
            )));
        }
        let n = self.elements()?;
        let v: Vec<f32> = match &self.raw {
            Some(r) if r.len() == 4 * n => r
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None if self.floats.len() == n => self.floats.clone(),
            _ => {
                return Err(bad(format!(
                    "tensor {} ({:?}) does not hold {n} floats",
                    self.name, self.dims
                )))
            }
        };
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!(
                "tensor {} holds a non-finite value",
                self.name
            )));
        }
        Ok(v)
    }
    fn i64s(&self) -> Result<Vec<i64>> {
        if self.external || self.data_type != INT64 {
            return Err(bad(format!(
                "tensor {} is not an int64 constant",
                self.name
            )));
        }
        let n = self.elements()?;
        match &self.raw {
            Some(r) if r.len() == 8 * n => Ok(r
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()),
            None if self.ints.len() == n => Ok(self.ints.clone()),
            _ => Err(bad(format!(
                "tensor {} does not hold {n} int64s",
                self.name
            ))),
        }
    }
}

#[derive(Default)]
struct Node {
    op: String,
    inputs: Vec<String>,
    /// Integer and integer-list attributes by name; string ones as bytes.
    ints: Vec<(String, Vec<i64>)>,
    strings: Vec<(String, Vec<u8>)>,
    /// Every attribute's name.
    attrs: Vec<String>,
}

impl Node {
    fn parse(b: &[u8]) -> Result<Node> {
        let mut node = Node::default();
        let mut f = Fields::new(b);
        while let Some((n, v)) = f.next()? {
            match (n, v) {
                (1, Value::Bytes(b)) => node.inputs.push(text(b, "a node input")?),
                (4, Value::Bytes(b)) => node.op = text(b, "an operator name")?,
                (5, Value::Bytes(b)) => {
                    let (mut name, mut ints, mut s) = (String::new(), Vec::new(), None);
                    let mut a = Fields::new(b);
                    while let Some((n, v)) = a.next()? {
                        match (n, v) {
                            (1, Value::Bytes(b)) => name = text(b, "an attribute name")?,
                            (3, v) | (8, v) => push_ints(v, &mut ints)?,
                            (4, Value::Bytes(b)) => s = Some(b.to_vec()),
                            _ => {}
                        }
                    }
                    node.attrs.push(name.clone());
                    match s {
                        Some(s) => node.strings.push((name, s)),
                        None => node.ints.push((name, ints)),
                    }
                }
                _ => {}
            }
        }
        Ok(node)
    }
    fn int_attr(&self, name: &str) -> Option<&[i64]> {
        self.ints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    fn input(&self, i: usize) -> Result<&str> {
        self.inputs
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("{} node without input {i}", self.op)))
    }
}

/// Silero VAD v6's operators, in graph order.
const V6_OPS: &[&str] = &[
    "Pad",
    "Unsqueeze",
    "Conv",
    "Slice",
    "Slice",
    "Pow",
    "Pow",
    "Add",
    "Sqrt",
    "Conv",
    "Relu",
    "Conv",
    "Relu",
    "Conv",
    "Relu",
    "Conv",
    "Relu",
    "Transpose",
    "LSTM",
    "Squeeze",
    "Relu",
    "Transpose",
    "Conv",
    "Sigmoid",
    "Reshape",
];

/// The weights of a Silero VAD v6 ONNX file, in [`crate::vad::file::TENSORS`] order.
pub fn silero_vad_tensors(bytes: &[u8]) -> Result<Vec<Vec<f32>>> {
    let mut graph = None;
    let mut f = Fields::new(bytes);
    while let Some((n, v)) = f.next()? {
        if let (7, Value::Bytes(b)) = (n, v) {
            graph = Some(b);
        }
    }
    let graph = graph.ok_or_else(|| bad("no graph (is this an ONNX model?)"))?;
    let mut nodes = Vec::new();
    let mut tensors = Vec::new();
    let mut f = Fields::new(graph);
    while let Some((n, v)) = f.next()? {
        match (n, v) {
            (1, Value::Bytes(b)) => nodes.push(Node::parse(b)?),
            (5, Value::Bytes(b)) => tensors.push(Tensor::parse(b)?),
            _ => {}
        }
    }
    let ops: Vec<&str> = nodes.iter().map(|n| n.op.as_str()).collect();
    if ops != V6_OPS {
        return Err(bad(format!(
            "not Silero VAD v6's graph (operators {ops:?})"
        )));
    }
    let tensor = |name: &str| {
        tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(format!("no initializer {name}")))
    };
    let weight = |node: &Node, i: usize, shape: &[usize]| -> Result<Vec<f32>> {
        let t = tensor(node.input(i)?)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        // ONNX keeps the unit axes (basis [258, 1, 256], decoder weight [1, 128, 1]).
        let squeezed: Vec<i64> = t.dims.iter().copied().filter(|&d| d != 1).collect();
        let want: Vec<i64> = dims.iter().copied().filter(|&d| d != 1).collect();
        if squeezed != want {
            return Err(bad(format!(
                "{} input {i} ({}) has shape {:?}, expected {shape:?}",
                node.op, t.name, t.dims
            )));
        }
        t.f32s()
    };
    // The front end: reflection by 128 on both sides, then the STFT convolution.
    let pad = &nodes[0];
    if pad
        .strings
        .iter()
        .find(|(n, _)| n == "mode")
        .map(|(_, v)| v.as_slice())
        != Some(b"reflect".as_slice())
        || tensor(pad.input(1)?)?.i64s()? != [0, 128, 0, 128]
    {
        return Err(bad(
            "the input padding is not v6's (reflect, 128 each side)",
        ));
    }
    let conv = |node: &Node, kernel: i64, stride: i64, pads: i64| -> Result<()> {
        let ok = node.int_attr("kernel_shape") == Some(&[kernel])
            && node.int_attr("strides") == Some(&[stride])
            && node
                .int_attr("pads")
                .is_none_or(|p| p.iter().all(|&x| x == pads))
            && node.int_attr("group").is_none_or(|g| g == [1])
            && node.int_attr("dilations").is_none_or(|d| d == [1]);
        if ok {
            Ok(())
        } else {
            Err(bad(format!(
                "a convolution is not v6's (kernel {kernel}, stride {stride}, padding {pads})"
            )))
        }
    };
    let convs: Vec<&Node> = nodes.iter().filter(|n| n.op == "Conv").collect();
    conv(convs[0], 256, 128, 0)?;
    for (c, stride) in convs[1..5].iter().zip([1, 2, 2, 1]) {
        conv(c, 3, stride, 1)?;
    }
    conv(convs[5], 1, 1, 0)?;
    // Only hidden_size set: forward, default gates and activations, no clip.
    let lstm = &nodes[18];
    if lstm.int_attr("hidden_size") != Some(&[128])
        || lstm.attrs.iter().any(|n| n != "hidden_size")
        || lstm.inputs.get(4).is_some_and(|s| !s.is_empty())
    {
        return Err(bad(
            "the LSTM is not v6's (forward, 128 hidden, default gates)",
        ));
    }

    let mut out = vec![weight(convs[0], 1, &[258, 256])?];
    for (c, (o, i)) in convs[1..5]
        .iter()
        .zip([(128, 129), (64, 128), (64, 64), (128, 64)])
    {
        out.push(weight(c, 1, &[o, i, 3])?);
        out.push(weight(c, 2, &[o])?);
    }
    out.push(weight(lstm, 1, &[512, 128])?);
    out.push(weight(lstm, 2, &[512, 128])?);
    out.push(weight(lstm, 3, &[1024])?);
    out.push(weight(convs[5], 1, &[128])?);
    out.push(weight(convs[5], 2, &[1])?);
    Ok(out)
}
