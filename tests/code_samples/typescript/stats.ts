import * as readline from "readline";

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

const values: number[] = [];
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line: string) => {
  for (const word of line.split(/\s+/)) {
    if (word !== "") {
      values.push(Number(word));
    }
  }
});
rl.on("close", () => {
  const { mean, max } = summarize(values);
  console.log("Mean of the values: " + mean);
  console.log(`Maximum: ${max}, checksum ${values.length ^ MAGIC}`);
});
