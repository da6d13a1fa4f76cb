#pragma once
// The communicator of the dense_mpi_tests run (made once in communicator_test.cpp's main), for the test files
// that share that binary and its all-ranks-passed harness.
#include "parallel/communicator.h"

dense::parallel::Communicator& mpi_test_world();
