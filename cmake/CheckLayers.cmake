# The layering check (docs/architecture.md): every #include "<layer>/..." in src/ and data_prep/ must point to the
# file's own layer or one below it, and only the backend layer itself may include a concrete backend
# (backend/cpu/..., backend/cuda/...): the others go through backend/backend.h and backend/ops.h. data_prep/ (the
# library only dense-prep links) is a layer over data and core that nothing in src/ may include.
#
#   cmake -DDENSE_ROOT=<repo> -P cmake/CheckLayers.cmake
#
# Run as a build step that every layer library waits for (src/CMakeLists.txt, target dense_check_layers) and as
# the ctest test `layering`. Prints every broken rule as file:line and fails; prints nothing when all hold.
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED DENSE_ROOT)
  get_filename_component(DENSE_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()

# What each layer may include, itself included. parallel and models are side by side: neither includes the other.
# config (the YAML engine and the TrainConfig schema) embeds ModelConfig and checks vocabulary files, nothing
# more; eval sits over train (it fine-tunes with train's optimizers and checkpoints), never the reverse.
set(_allowed_core      core)
set(_allowed_backend   core backend)
set(_allowed_nn        core backend nn)
set(_allowed_models    core backend nn models)
set(_allowed_parallel  core backend nn parallel)
set(_allowed_data      core data)
set(_allowed_config    core models data config)
set(_allowed_train     core backend nn models parallel data config train)
set(_allowed_eval      core backend nn models parallel data config train eval)
set(_allowed_data_prep core data data_prep)
set(_src_layers core backend nn models parallel data config train eval)
set(_layers ${_src_layers} data_prep)

file(GLOB_RECURSE _files RELATIVE "${DENSE_ROOT}" "${DENSE_ROOT}/src/*.h" "${DENSE_ROOT}/src/*.cpp"
     "${DENSE_ROOT}/src/*.cu" "${DENSE_ROOT}/src/*.cuh" "${DENSE_ROOT}/data_prep/*.h" "${DENSE_ROOT}/data_prep/*.cpp")
list(SORT _files)
set(_errors "")
foreach(_file IN LISTS _files)
  if(_file MATCHES "^data_prep/")
    set(_layer data_prep)
  else()
    string(REGEX REPLACE "^src/([^/]+).*" "\\1" _layer "${_file}")
    if(NOT _layer IN_LIST _src_layers)
      string(APPEND _errors "\n  ${_file}: in no layer (src/ holds only ${_src_layers}; add the folder to cmake/CheckLayers.cmake)")
      continue()
    endif()
  endif()
  file(READ "${DENSE_ROOT}/${_file}" _text)
  set(_text "\n${_text}")
  string(REGEX MATCHALL "\n[ \t]*#[ \t]*include[ \t]*\"[^\"\n]*\"" _includes "${_text}")
  set(_rest "${_text}")
  set(_line 0)
  foreach(_inc IN LISTS _includes)
    # Its line: the newlines before it (from where the previous include ended), plus its own leading one.
    string(FIND "${_rest}" "${_inc}" _pos)
    string(SUBSTRING "${_rest}" 0 ${_pos} _before)
    string(REGEX REPLACE "[^\n]" "" _newlines "${_before}")
    string(LENGTH "${_newlines}" _n)
    math(EXPR _line "${_line} + ${_n} + 1")
    string(LENGTH "${_inc}" _len)
    math(EXPR _after "${_pos} + ${_len}")
    string(SUBSTRING "${_rest}" ${_after} -1 _rest)
    string(REGEX REPLACE "^\n[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\"$" "\\1" _path "${_inc}")
    string(REGEX MATCH "^[^/]+" _target "${_path}")
    if(NOT _path MATCHES "/" OR NOT _target IN_LIST _layers)
      continue()  # a same-folder or generated include, not a layer
    endif()
    if(NOT _target IN_LIST _allowed_${_layer})
      string(REPLACE ";" ", " _may "${_allowed_${_layer}}")
      if(_target STREQUAL "data_prep")
        set(_why "data_prep/ is dense-prep's library: nothing in src/ may include it; move what ${_layer} needs down into src/data")
      else()
        set(_why "${_target} is not below ${_layer}")
      endif()
      string(APPEND _errors "\n  ${_file}:${_line}: #include \"${_path}\": layer ${_layer} may include only ${_may}"
                            " (${_why})")
    elseif(NOT _layer STREQUAL "backend" AND _path MATCHES "^backend/(cpu|cuda)/")
      string(APPEND _errors "\n  ${_file}:${_line}: #include \"${_path}\": a concrete backend is private to the"
                            " backend layer; include backend/backend.h or backend/ops.h")
    endif()
  endforeach()
endforeach()

if(_errors)
  message(FATAL_ERROR "Layering broken (docs/architecture.md, cmake/CheckLayers.cmake):${_errors}")
endif()
