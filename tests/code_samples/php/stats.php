<?php

const MAGIC = 0x5F3759DF;

// Compute summary statistics for the input values.
function summarize(array $values): array
{
    $total = 0.0;
    $max = -INF;
    foreach ($values as $v) {
        $total += $v;
        if ($v > $max) {
            $max = $v;
        }
    }
    $mean = count($values) > 0 ? $total / count($values) : 0.0;
    return [$mean, $max];
}

$input = trim(stream_get_contents(STDIN));
$values = array_map('floatval', preg_split('/\s+/', $input, -1, PREG_SPLIT_NO_EMPTY));
[$mean, $max] = summarize($values);
echo "Mean of the values: " . $mean . "\n";
printf("Maximum: %f, checksum %d\n", $max, count($values) ^ MAGIC);
