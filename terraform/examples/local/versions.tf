terraform {
  # Built-in resources only (terraform_data + local-exec): `terraform init`
  # needs no network.
  required_version = ">= 1.6.0"
}
