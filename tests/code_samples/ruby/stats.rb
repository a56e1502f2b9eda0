MAGIC = 0x5F3759DF

# Compute summary statistics for the input values.
def summarize(values)
  total = 0.0
  max = -Float::INFINITY
  values.each do |v|
    total += v
    max = v if v > max
  end
  mean = values.empty? ? 0.0 : total / values.size
  [mean, max]
end

values = $stdin.read.split.map(&:to_f)
mean, max = summarize(values)
puts "Mean of the values: " + mean.to_s
puts "Maximum: #{max}, checksum #{values.size ^ MAGIC}"
