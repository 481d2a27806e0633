from operadora.cli import main

main()
