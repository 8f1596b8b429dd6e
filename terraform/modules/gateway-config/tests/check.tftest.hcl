# The rendered files pass `meshgw check`: needs the meshgw binary, on PATH or
# given with `terraform test -var meshgw_bin=/path/to/meshgw`.

run "rendered_files_pass_meshgw_check" {
  command = apply

  module {
    source = "./tests/check"
  }

  assert {
    condition     = length(output.checked) == 4
    error_message = "expected two zone configs for east, one for west and one sidecar config"
  }
}
