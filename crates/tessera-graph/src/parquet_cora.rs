//! Cora from the Parquet files Neo4j's `graphdatascience` package ships (`resources/cora/cora_{nodes,rels}.parquet.gzip`):
//! the source the asset step falls back to when no `shared/data` folder holds the `.npz` release.
//!
//! `cora_nodes` has one row per paper: `nodeId` (LINQS paper id), `subject` (class 0–6) and `features` (a list of
//! 1433 binary word indicators); `cora_rels` has one row per citation: `sourceNodeId`, `targetNodeId`. Both come from
//! the LINQS `cora.content` / `cora.cites` files that the gnn-benchmark `.npz` was also built from.
use crate::error::{GraphError, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use std::collections::HashMap;
use std::path::Path;

/// Cora as read from the package: nodes in file order.
#[derive(Debug, Clone)]
pub struct RawGraph {
    /// Number of nodes.
    pub n: usize,
    /// Directed citation pairs (node indices).
    pub edges: Vec<(u32, u32)>,
    /// Sparse binary features: for each node, the indices of its non-zero words.
    pub feature_rows: Vec<Vec<u32>>,
    /// Feature width.
    pub num_features: usize,
    /// Class of every node.
    pub labels: Vec<u32>,
}

fn err(path: &Path, msg: impl Into<String>) -> GraphError {
    GraphError::Parquet {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn rows(path: &Path) -> Result<Vec<Row>> {
    let file = std::fs::File::open(path).map_err(|e| tessera_core::Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| err(path, e.to_string()))?;
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| err(path, e.to_string()))?;
    iter.map(|r| r.map_err(|e| err(path, e.to_string())))
        .collect()
}

fn column<'a>(row: &'a Row, name: &str, path: &Path) -> Result<&'a Field> {
    row.get_column_iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, f)| f)
        .ok_or_else(|| err(path, format!("missing column {name}")))
}

fn as_int(f: &Field, what: &str, path: &Path) -> Result<i64> {
    match f {
        Field::Long(v) => Ok(*v),
        Field::Int(v) => Ok(i64::from(*v)),
        Field::Short(v) => Ok(i64::from(*v)),
        Field::Byte(v) => Ok(i64::from(*v)),
        other => Err(err(
            path,
            format!("{what}: expected an integer, found {other:?}"),
        )),
    }
}

/// Reads the two Parquet files into a [`RawGraph`]. Every citation must name known papers, every feature list
/// must have the same length, and every class must be non-negative.
pub fn read_cora(nodes_path: &Path, rels_path: &Path) -> Result<RawGraph> {
    let node_rows = rows(nodes_path)?;
    if node_rows.is_empty() {
        return Err(err(nodes_path, "no nodes"));
    }
    let mut index = HashMap::with_capacity(node_rows.len());
    let mut labels = Vec::with_capacity(node_rows.len());
    let mut feature_rows = Vec::with_capacity(node_rows.len());
    let mut num_features = None;
    for (i, row) in node_rows.iter().enumerate() {
        let id = as_int(column(row, "nodeId", nodes_path)?, "nodeId", nodes_path)?;
        if index.insert(id, i as u32).is_some() {
            return Err(err(nodes_path, format!("duplicate nodeId {id}")));
        }
        let class = as_int(column(row, "subject", nodes_path)?, "subject", nodes_path)?;
        let class = u32::try_from(class)
            .map_err(|_| err(nodes_path, format!("node {id}: class {class} out of range")))?;
        labels.push(class);
        let Field::ListInternal(list) = column(row, "features", nodes_path)? else {
            return Err(err(
                nodes_path,
                format!("node {id}: features is not a list"),
            ));
        };
        let values = list.elements();
        match num_features {
            None => num_features = Some(values.len()),
            Some(w) if w != values.len() => {
                return Err(err(
                    nodes_path,
                    format!("node {id}: {} features, expected {w}", values.len()),
                ))
            }
            Some(_) => {}
        }
        let mut nz = Vec::new();
        for (j, v) in values.iter().enumerate() {
            if as_int(v, "feature", nodes_path)? != 0 {
                nz.push(j as u32);
            }
        }
        feature_rows.push(nz);
    }
    let mut edges = Vec::new();
    for row in rows(rels_path)? {
        let s = as_int(
            column(&row, "sourceNodeId", rels_path)?,
            "sourceNodeId",
            rels_path,
        )?;
        let t = as_int(
            column(&row, "targetNodeId", rels_path)?,
            "targetNodeId",
            rels_path,
        )?;
        let look = |id: i64| {
            index
                .get(&id)
                .copied()
                .ok_or_else(|| err(rels_path, format!("citation names unknown paper {id}")))
        };
        edges.push((look(s)?, look(t)?));
    }
    Ok(RawGraph {
        n: node_rows.len(),
        edges,
        feature_rows,
        num_features: num_features.unwrap_or(0),
        labels,
    })
}
