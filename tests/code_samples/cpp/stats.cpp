#include <iostream>
#include <utility>
#include <vector>

namespace stats {

constexpr unsigned int MAGIC = 0x5F3759DF;

// Compute summary statistics for the input values.
template <typename T>
std::pair<T, T> summarize(const std::vector<T>& values) {
    T total = 0;
    T max = values.empty() ? T() : values.front();
    for (const T& v : values) {
        total += v;
        if (v > max) {
            max = v;
        }
    }
    T mean = values.empty() ? T() : total / static_cast<T>(values.size());
    return {mean, max};
}

}

int main() {
    std::vector<double> values;
    double x;
    while (std::cin >> x) {
        values.push_back(x);
    }
    auto [mean, max] = stats::summarize(values);
    std::cout << "Mean of the values: " << mean << '\n';
    std::cout << "Maximum: " << max << ", checksum " << (values.size() ^ stats::MAGIC) << std::endl;
    return 0;
}
