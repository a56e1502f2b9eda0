local MAGIC = 0x5F3759DF

-- Compute summary statistics for the input values.
local function summarize(values)
  local total = 0.0
  local max = -math.huge
  for _, v in ipairs(values) do
    total = total + v
    if v > max then
      max = v
    end
  end
  local mean = #values > 0 and total / #values or 0.0
  return mean, max
end

local values = {}
for word in io.read("a"):gmatch("%S+") do
  values[#values + 1] = tonumber(word)
end
local mean, max = summarize(values)
print("Mean of the values: " .. mean)
print(string.format("Maximum: %f, checksum %d", max, #values ~ MAGIC))
