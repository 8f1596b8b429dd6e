terraform {
  # Pure rendering: no provider at all, so `terraform init` and
  # `terraform test` work offline.
  required_version = ">= 1.6.0"
}
