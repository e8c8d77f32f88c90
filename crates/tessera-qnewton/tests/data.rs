use tessera_qnewton::data::{blobs, parse_digits_csv};

#[test]
fn digits_csv_parses_and_rejects_bad_rows() {
    let row: Vec<String> = (0..64)
        .map(|i| (i % 17).to_string())
        .chain(["7".to_string()])
        .collect();
    let text = format!("{}\n{}\n", row.join(","), row.join(","));
    let d = parse_digits_csv(&text).unwrap();
    assert_eq!((d.len(), d.dim, d.classes), (2, 64, 10));
    assert_eq!(d.y, vec![7, 7]);
    assert!((d.row(0)[16] - 1.0).abs() < 1e-12);
    assert!(parse_digits_csv("1,2,3\n").is_err());
    assert!(parse_digits_csv(&format!("{},11", row[..64].join(","))).is_err());
    assert!(parse_digits_csv("").is_err());
}

#[test]
fn blobs_split_is_seeded_and_disjoint() {
    let d = blobs(100, 3, 4, 5);
    let (a, b) = d.split(0.2, 1);
    assert_eq!((a.len(), b.len()), (80, 20));
    let (a2, _) = d.split(0.2, 1);
    assert_eq!(a.x, a2.x);
    assert_eq!(d.y.iter().filter(|&&c| c == 0).count(), 25);
}
