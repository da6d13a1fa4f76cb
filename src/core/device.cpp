#include "core/device.h"

#include "core/error.h"

namespace dense {

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string idx = text.substr(5);
    if (!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos) return Device::cuda(std::stoi(idx));
  }
  DENSE_FAIL("unknown device '{}': expected cpu, cuda or cuda:N", text);
}

}  // namespace dense
