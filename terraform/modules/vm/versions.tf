terraform {
  # No provider: built-in terraform_data with the file and remote-exec
  # provisioners over SSH, so `terraform init` works offline.
  required_version = ">= 1.6.0"
}
