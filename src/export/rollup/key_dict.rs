//! A roll-up key column's distinct values, interned to dense ids.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

use super::{arrow_err, internal};
use crate::error::Result;

/// The distinct values of one key column, each with a dense id (in order of first sight).
pub(super) enum KeyDict {
    /// Utf8 text, interned by value (no encoding per row); null has an id of its own.
    Text {
        ids: FxHashMap<Box<str>, u32>,
        values: Vec<Option<Box<str>>>,
        null: Option<u32>,
    },
    /// Any other type (timestamps, decimals, …), interned by its arrow row-format bytes.
    Encoded {
        converter: RowConverter,
        ids: FxHashMap<Box<[u8]>, u32>,
        values: Vec<Box<[u8]>>,
    },
}

impl KeyDict {
    pub(super) fn new(t: &DataType) -> Result<KeyDict> {
        Ok(match t {
            DataType::Utf8 => KeyDict::Text {
                ids: FxHashMap::default(),
                values: Vec::new(),
                null: None,
            },
            _ => KeyDict::Encoded {
                converter: RowConverter::new(vec![SortField::new(t.clone())]).map_err(arrow_err)?,
                ids: FxHashMap::default(),
                values: Vec::new(),
            },
        })
    }

    pub(super) fn len(&self) -> usize {
        match self {
            KeyDict::Text { values, .. } => values.len(),
            KeyDict::Encoded { values, .. } => values.len(),
        }
    }

    pub(super) fn next_id(&self) -> Result<u32> {
        u32::try_from(self.len()).map_err(|_| internal("more than 2^32 key values".into()))
    }

    pub(super) fn text_id(&mut self, v: Option<&str>) -> Result<u32> {
        let next = self.next_id()?;
        let KeyDict::Text { ids, values, null } = self else {
            return Err(internal("a text value in a non-text key".into()));
        };
        Ok(match v {
            None => *null.get_or_insert_with(|| {
                values.push(None);
                next
            }),
            Some(v) => match ids.get(v) {
                Some(&id) => id,
                None => {
                    ids.insert(Box::from(v), next);
                    values.push(Some(Box::from(v)));
                    next
                }
            },
        })
    }

    pub(super) fn encoded_id(&mut self, v: &[u8]) -> Result<u32> {
        let next = self.next_id()?;
        let KeyDict::Encoded { ids, values, .. } = self else {
            return Err(internal("encoded bytes in a text key".into()));
        };
        Ok(match ids.get(v) {
            Some(&id) => id,
            None => {
                ids.insert(Box::from(v), next);
                values.push(Box::from(v));
                next
            }
        })
    }

    /// The id of each value of `a`, appended to `out`.
    pub(super) fn ids(&mut self, a: &ArrayRef, out: &mut Vec<u32>) -> Result<()> {
        match self {
            KeyDict::Text { .. } => {
                let s = a
                    .as_string_opt::<i32>()
                    .ok_or_else(|| internal(format!("a {} key column, not text", a.data_type())))?;
                // Neighbouring rows often share a value: one comparison instead of a lookup.
                let mut last: Option<(Option<&str>, u32)> = None;
                for v in s.iter() {
                    let id = match last {
                        Some((l, id)) if l == v => id,
                        _ => self.text_id(v)?,
                    };
                    last = Some((v, id));
                    out.push(id);
                }
            }
            KeyDict::Encoded { converter, .. } => {
                let rows = converter
                    .convert_columns(std::slice::from_ref(a))
                    .map_err(arrow_err)?;
                let mut last: Option<(&[u8], u32)> = None;
                for r in rows.iter() {
                    let b = r.data();
                    let id = match last {
                        Some((l, id)) if l == b => id,
                        _ => self.encoded_id(b)?,
                    };
                    last = Some((b, id));
                    out.push(id);
                }
            }
        }
        Ok(())
    }

    /// The distinct values, in id order.
    pub(super) fn array(&self) -> Result<ArrayRef> {
        match self {
            KeyDict::Text { values, .. } => Ok(Arc::new(
                values
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<arrow::array::StringArray>(),
            )),
            KeyDict::Encoded {
                converter, values, ..
            } => {
                let parser = converter.parser();
                let mut cols = converter
                    .convert_rows(values.iter().map(|b| parser.parse(b)))
                    .map_err(arrow_err)?;
                cols.pop()
                    .ok_or_else(|| internal("a key column missing".into()))
            }
        }
    }

    /// Each of `other`'s ids as an id of this column (values `self` lacks are added).
    pub(super) fn translate(&mut self, other: &KeyDict) -> Result<Vec<u32>> {
        match other {
            KeyDict::Text { values, .. } => {
                values.iter().map(|v| self.text_id(v.as_deref())).collect()
            }
            KeyDict::Encoded { values, .. } => values.iter().map(|v| self.encoded_id(v)).collect(),
        }
    }
}
