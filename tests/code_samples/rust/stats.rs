use std::io::{self, Read};

const MAGIC: u32 = 0x5F3759DF;

// Compute summary statistics for the input values.
fn summarize(values: &[f64]) -> (f64, f64) {
    let mut total = 0.0;
    let mut max = f64::NEG_INFINITY;
    for &v in values {
        total += v;
        if v > max {
            max = v;
        }
    }
    let mean = if values.is_empty() { 0.0 } else { total / values.len() as f64 };
    (mean, max)
}

fn main() {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).expect("failed to read input");
    let values: Vec<f64> = input.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (mean, max) = summarize(&values);
    println!("{}{}", "Mean of the values: ", mean);
    println!("Maximum: {}, checksum {}", max, values.len() as u32 ^ MAGIC);
}
