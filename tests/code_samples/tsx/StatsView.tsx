import React from "react";

const MAGIC: number = 0x5F3759DF;

interface Stats {
  mean: number;
  max: number;
}

// Compute summary statistics for the input values.
function summarize(values: readonly number[]): Stats {
  let total = 0;
  let max = -Infinity;
  for (const v of values) {
    total += v;
    if (v > max) {
      max = v;
    }
  }
  const mean = values.length > 0 ? total / values.length : 0;
  return { mean, max };
}

export function StatsView({ text }: { text: string }) {
  const values = text.split(/\s+/).filter((w) => w !== "").map(Number);
  const { mean, max } = summarize(values);
  return (
    <div className="stats">
      <p>{"Mean of the values: " + mean}</p>
      <p>Maximum: {max}, checksum {values.length ^ MAGIC}</p>
    </div>
  );
}
