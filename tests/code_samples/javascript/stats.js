const readline = require("readline");

const MAGIC = 0x5F3759DF;

// Compute summary statistics for the input values.
function summarize(values) {
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

const values = [];
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
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
